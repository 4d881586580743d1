import Foundation
import Testing

/// `baton replay --store` with a custom processor command: the command would store wherever it stores (here,
/// its "production" file), so the replay is refused and production is left exactly as it was.
@Suite(.serialized)
struct ReplayStoreTests {
    @Test(.timeLimit(.minutes(2)))
    func replayIntoAScratchStoreNeverReachesTheProcessorCommandsProductionStore() async throws {
        try await TestStack.with("replaystore", yaml: "") { stack in
            let production = stack.directory + "/production.jsonl"
            let yaml = DeliveryTests.quickJob(
                every: "200ms",
                extra: """
                    processor:
                      command: [sh, -c, "cat >> \(production)"]
                    """
            )
            try stack.rewrite(yaml: yaml)
            try stack.startServices(processors: 1)
            let stored = try await stack.waitUntil(timeout: .seconds(60)) { (stack.outboxCounts()["acked"] ?? 0) >= 3 }
            #expect(stored, "outbox: \(stack.outboxCounts()); processor: \(stack.stderr("processor-1").suffix(800))")
            await stack.stop()
            let before = try Data(contentsOf: URL(fileURLWithPath: production))
            #expect(!before.isEmpty)

            let scratch = stack.directory + "/scratch.sqlite"
            let replay = try await stack.baton(["replay", "--job", "quick", "--store", scratch])
            #expect(replay.status == 2, "\(replay.output)")
            #expect(replay.output.contains("processor.command"), "\(replay.output)")
            #expect(replay.output.contains("Nothing was replayed"), "\(replay.output)")
            // The oracle: the production store's bytes are unchanged, and no scratch store was made either.
            #expect(try Data(contentsOf: URL(fileURLWithPath: production)) == before)
            #expect(!FileManager.default.fileExists(atPath: scratch))

            // Without --store the replay goes through the command, as documented: production keeps what it had
            // (parts it stored are left as they are; parts still waiting when the stack stopped are added). The
            // algorithm, which keeps the raw results, must be up for it.
            try stack.start("algorithm", "baton-algorithm")
            let plain = try await stack.baton(["replay", "--job", "quick"])
            #expect(plain.status == 0, "\(plain.output)")
            #expect(try Data(contentsOf: URL(fileURLWithPath: production)).starts(with: before))
        }
    }
}
