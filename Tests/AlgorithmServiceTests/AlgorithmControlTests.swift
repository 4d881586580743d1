import AlgorithmService
import Foundation
import Messaging
import TestSupport
import Testing

/// What the algorithm's `algorithm_control` socket answers `baton results`, `audit` and `replay`.
struct AlgorithmControlTests {
    let scratch = Scratch()
    let t0 = Date(timeIntervalSince1970: 1_000_000)

    /// Two parts with their raw files: `j@1` (pending) and `j@2` (dead as a conflict).
    func control() async throws -> (AlgorithmControl, Outbox, [Data]) {
        let outbox = try await Outbox(path: scratch.path("o.sqlite"))
        var payloads: [Data] = []
        for (index, run) in ["j@1", "j@2"].enumerated() {
            let payload = Data("{\"n\":\(index)}\n".utf8)
            let path = scratch.path("\(index).result")
            try payload.write(to: URL(fileURLWithPath: path))
            try await outbox.add(.init(header: Fixtures.header(payload, run: run), path: path), now: t0)
            payloads.append(payload)
        }
        try await outbox.markDead(runID: "j@2", part: 0, reason: "conflict: stored with another sha256", cause: "conflict")
        return (AlgorithmControl(outbox: outbox, ledger: RunLedger(outbox: outbox)), outbox, payloads)
    }

    @Test func resultsAreListedByStateAndCauseWithTheCountsOfAll() async throws {
        let (control, _, _) = try await control()
        let all = try await control.handle(AlgorithmRequest(command: .results)).reply
        #expect(all.ok)
        #expect(all.parts?.map(\.header.runID) == ["j@1", "j@2"])
        #expect(all.counts == ["pending": 1, "dead": 1])
        let conflicts = try await control.handle(AlgorithmRequest(command: .results, state: .dead, cause: "conflict")).reply
        #expect(conflicts.parts?.map(\.header.runID) == ["j@2"])
        #expect(conflicts.parts?.first?.state == .dead)
        #expect(conflicts.counts == ["pending": 1, "dead": 1], "the counts are of every part")
        let one = try await control.handle(AlgorithmRequest(command: .results, run: "j@1")).reply
        #expect(one.parts?.map(\.header.runID) == ["j@1"])
    }

    @Test func oneRunsPartsAreListedWithTheOtherFilters() async throws {
        let (control, _, _) = try await control()
        let dead = try await control.handle(AlgorithmRequest(command: .results, state: .dead, run: "j@2")).reply
        #expect(dead.parts?.map(\.header.runID) == ["j@2"])
        let none = try await control.handle(AlgorithmRequest(command: .results, state: .dead, run: "j@1")).reply
        #expect(none.ok && none.parts?.isEmpty == true, "j@1 has no dead part")
        #expect(none.counts == ["pending": 1, "dead": 1], "the counts are still of every part")
        let unknown = try await control.handle(AlgorithmRequest(command: .results, run: "j@9")).reply
        #expect(unknown.ok && unknown.parts?.isEmpty == true)
    }

    @Test func rawBytesAreSentOnlyWhenTheyMatchTheirChecksum() async throws {
        let (control, _, payloads) = try await control()
        let raw = try await control.handle(AlgorithmRequest(command: .raw, run: "j@1", part: 0))
        #expect(raw.reply.ok)
        #expect(raw.payload == payloads[0])
        try Data("{\"tampered\":1}\n".utf8).write(to: URL(fileURLWithPath: scratch.path("1.result")))
        let tampered = try await control.handle(AlgorithmRequest(command: .raw, run: "j@2", part: 0))
        #expect(!tampered.reply.ok)
        #expect(tampered.payload == nil)
        #expect(tampered.reply.error?.contains("does not match its recorded sha256") == true, "\(tampered.reply)")
        let unknown = try await control.handle(AlgorithmRequest(command: .raw, run: "j@3", part: 0))
        #expect(!unknown.reply.ok)
    }

    @Test func aReplayedPartIsAcknowledgedOnce() async throws {
        let (control, outbox, _) = try await control()
        let first = try await control.handle(AlgorithmRequest(command: .delivered, run: "j@2", part: 0)).reply
        #expect(first.changed == true)
        #expect(try await outbox.entry(runID: "j@2", part: 0)?.state == .acked)
        let again = try await control.handle(AlgorithmRequest(command: .delivered, run: "j@2", part: 0)).reply
        #expect(again.changed == false)
    }

    @Test func theRunLedgerIsListed() async throws {
        let (control, outbox, _) = try await control()
        let ledger = RunLedger(outbox: outbox)
        #expect(try await ledger.accept(Fixtures.request("j@5")) == nil)
        try await ledger.fail("j@5", reason: "boom")
        let runs = try await control.handle(AlgorithmRequest(command: .runs)).reply.runs
        #expect(runs?.map(\.request.runID) == ["j@5"])
        #expect(runs?.first?.state == .failed)
        #expect(runs?.first?.error == "boom")
    }

    @Test func rawAndDeliveredNeedARunAndAPart() {
        #expect(throws: ProtocolError.self) { try AlgorithmRequest(command: .raw, run: "j@1970-01-01T00:01:00.000Z").validate() }
        #expect(throws: ProtocolError.self) { try AlgorithmRequest(command: .delivered, part: 0).validate() }
    }
}
