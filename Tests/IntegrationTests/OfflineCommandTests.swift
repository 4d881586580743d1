import Foundation
import Testing

/// `baton results`, `replay` and `audit` ask the services that own the data; with a service down they say which
/// one and exit 3, and open none of its files.
struct OfflineCommandTests {
    @Test(.timeLimit(.minutes(2)))
    func commandsSayWhichServiceIsNotRunning() async throws {
        try await TestStack.with("offline", yaml: DeliveryTests.quickJob(every: "1h")) { stack in
            for arguments in [["results"], ["replay", "--dead"]] {
                let outcome = try await stack.baton(arguments)
                #expect(outcome.status == 3, "\(arguments): \(outcome.output)")
                #expect(outcome.output.contains("is baton-algorithm running?"), "\(arguments): \(outcome.output)")
            }
            let audit = try await stack.baton(["audit"])
            #expect(audit.status == 3, "\(audit.output)")
            #expect(audit.output.contains("is baton-scheduler running?"), "\(audit.output)")
            // Nothing was created in the services' place.
            #expect(!FileManager.default.fileExists(atPath: stack.outboxPath))
            #expect(!FileManager.default.fileExists(atPath: stack.schedulerPath))
        }
    }
}
