import NIOCore
import NIOPosix
import Testing

@testable import MetricsHTTP

/// The HTTP server's tasks prefer its event loop; one that still has work after the server returned and the loop
/// was shut down must run elsewhere, not be dropped (NIO drops a job for a loop that is gone, and the task never
/// resumes).
struct EventLoopTaskExecutorTests {
    @Test(.timeLimit(.minutes(1)))
    func aTaskAfterTheLoopIsGoneStillRuns() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let executor = EventLoopTaskExecutor(group.next())
        let before = await withTaskExecutorPreference(executor) { () async -> Int in
            await Task.yield()
            return 1
        }
        #expect(before == 1)
        executor.close()
        try await group.shutdownGracefully()
        let after = await withTaskExecutorPreference(executor) { () async -> Int in
            await Task.yield()
            return 2
        }
        #expect(after == 2)
    }
}
