import Foundation
import Messaging
import Storage
import Testing

struct StorageTests {
    static func temporaryPath(_ name: String) -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("baton-storage-\(UUID().uuidString)")
        return directory.appendingPathComponent(name).path
    }

    static func header(_ payload: Data, run: String = "j@1", part: Int = 0) -> ResultHeader {
        ResultHeader(
            runID: run,
            job: "j",
            logicalTime: Date(timeIntervalSince1970: 60),
            part: part,
            parts: part + 1,
            size: payload.count,
            sha256: SHA256.hex(of: payload)
        )
    }

    @Test func jsonLinesAreStoredOneRowPerLineExactly() async throws {
        let store = try ResultStore(path: Self.temporaryPath("r.sqlite"))
        let payload = Data("{\"a\": 1}\n[1,2]\n\"text\"\n".utf8)
        #expect(try await store.store(Self.header(payload), payload: payload, processor: "p") == .stored(records: 3))
        #expect(try await store.records(runID: "j@1") == ["{\"a\": 1}", "[1,2]", "\"text\""])
    }

    @Test func storingTheSamePartTwiceKeepsOneCopy() async throws {
        let store = try ResultStore(path: Self.temporaryPath("r.sqlite"))
        let payload = Data("{\"a\":1}\n".utf8)
        #expect(try await store.store(Self.header(payload), payload: payload, processor: "p1") == .stored(records: 1))
        #expect(try await store.store(Self.header(payload), payload: payload, processor: "p2") == .duplicate)
        #expect(try await store.resultCount() == 1)
        #expect(try await store.records(runID: "j@1").count == 1)
    }

    @Test func nonJsonPayloadIsABlob() async throws {
        let store = try ResultStore(path: Self.temporaryPath("r.sqlite"))
        let payload = Data([0xff, 0x00, 0x01])
        #expect(try await store.store(Self.header(payload), payload: payload, processor: "p") == .stored(records: 0))
        #expect(try await store.contains(runID: "j@1", part: 0))
    }

    @Test func outboxDeliversInOrderAndTracksAcks() async throws {
        let outbox = try Outbox(path: Self.temporaryPath("o.sqlite"))
        let first = Self.header(Data("1".utf8), run: "j@1")
        let second = Self.header(Data("2".utf8), run: "j@2")
        try await outbox.add(.init(header: first, path: "/x/1"))
        try await outbox.add(.init(header: second, path: "/x/2"))
        try await outbox.add(.init(header: first, path: "/x/1"))
        #expect(try await outbox.nextPending()?.header.runID == "j@1")
        try await outbox.markSent(runID: "j@1", part: 0)
        #expect(try await outbox.nextPending()?.header.runID == "j@2")
        #expect(try await outbox.markAcked(runID: "j@1", part: 0))
        #expect(try await outbox.markAcked(runID: "j@1", part: 0) == false)
        #expect(try await outbox.counts() == ["acked": 1, "pending": 1])
    }
}
