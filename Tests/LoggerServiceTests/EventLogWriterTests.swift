import Foundation
import LoggerService
import Messaging
import Testing

struct EventLogWriterTests {
    @Test func rotatesBySizeAndKeepsTheNewestFiles() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("bt-log-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/events.jsonl"
        let writer = try EventLogWriter(path: path, maxBytes: 2048, keep: 2)
        for seq in 1...100 as ClosedRange<UInt64> {
            try writer.append(StatusEvent(type: "log.info", source: "test", instance: "t:1", seq: seq, message: "record \(seq)"))
        }
        let files = EventLogWriter.files(path)
        #expect(files == [EventLogWriter.rotated(path, 2), EventLogWriter.rotated(path, 1), path])
        var seqs: [UInt64] = []
        for file in files {
            let text = try String(contentsOfFile: file, encoding: .utf8)
            #expect(text.utf8.count <= 2048)
            for line in text.split(separator: "\n") {
                seqs.append(try Timestamp.decoder().decode(StatusEvent.self, from: Data(line.utf8)).seq)
            }
        }
        // The newest records, in order, with nothing missing between the oldest kept and the last.
        #expect(seqs.last == 100)
        #expect(seqs == Array(seqs.first!...100))
    }
}
