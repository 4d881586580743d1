import Commands
import Foundation
import Glibc
import Testing

struct CommandOwnerTests {
    /// A child that has exited but is not reaped yet still answers `kill(pid, 0)`; it has ended all the same, so
    /// the commands it started are leftovers for its successor.
    @Test(.timeLimit(.minutes(1)))
    func aZombieIsNotAlive() async throws {
        var pid: pid_t = 0
        let argv: [UnsafeMutablePointer<CChar>?] = [strdup("/bin/true"), nil]
        defer { argv.forEach { free($0) } }
        #expect(posix_spawn(&pid, "/bin/true", nil, nil, argv, environ) == 0)
        defer {
            var status: Int32 = 0
            waitpid(pid, &status, 0)
        }
        // Not reaped: the pid stays until waitpid, so polling cannot miss it.
        while CommandOwner.isAlive(pid) { try await Task.sleep(for: .milliseconds(5)) }
        #expect(kill(pid, 0) == 0, "an unreaped child still answers a signal check")
        #expect(CommandOwner.isAlive(getpid()))
    }

    /// A pid that no process has is not alive.
    @Test func aMissingProcessIsNotAlive() {
        #expect(!CommandOwner.isAlive(Int32.max))
    }
}
