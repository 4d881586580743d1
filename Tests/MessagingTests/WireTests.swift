import Foundation
import Messaging
import Testing

struct WireTests {
    let time = Date(timeIntervalSince1970: 1_774_746_000)

    /// A number that does not fit an integer field is named as such (Foundation says only "not valid JSON").
    @Test(arguments: [#"{"what":"runs","limit":1.5}"#, #"{"what":"runs","limit":1e30}"#])
    func aNumberThatIsNoIntegerIsNamed(header: String) {
        let frames = [Data(Wire.protocolID.utf8), Data(StatusQuery.kind.utf8), Data(header.utf8)]
        #expect(throws: ProtocolError.self) { try Wire.decode(StatusQuery.self, from: frames) }
        do {
            _ = try Wire.decode(StatusQuery.self, from: frames)
        } catch {
            #expect(error.reason.contains(#"field "limit" should be an integer"#), "\(error)")
        }
    }

    @Test func runRequestRoundTrip() throws {
        let request = RunRequest(
            runID: RunID.make(job: "hourly", logicalTime: time),
            job: "hourly",
            logicalTime: time,
            firedAt: time.addingTimeInterval(0.0004),
            trigger: .schedule
        )
        let frames = Wire.encode(request)
        #expect(frames.count == 3)
        #expect(String(decoding: frames[0], as: UTF8.self) == "baton/1")
        let decoded = try Wire.decode(RunRequest.self, from: frames).message
        #expect(decoded.runID == "hourly@2026-03-29T01:00:00.000Z")
        #expect(decoded.job == request.job)
        #expect(decoded.logicalTime == request.logicalTime)
        #expect(decoded.trigger == .schedule)
    }

    @Test func resultRoundTripVerifiesChecksum() throws {
        let payload = Data("{\"a\":1}\n".utf8)
        let header = ResultHeader(
            runID: RunID.make(job: "j", logicalTime: time),
            job: "j",
            logicalTime: time,
            size: payload.count,
            sha256: SHA256.hex(of: payload)
        )
        let message = try ResultMessage(frames: ResultMessage(header: header, payload: payload).frames)
        #expect(message.payload == payload)
        var corrupted = ResultMessage(header: header, payload: payload).frames
        corrupted[3] = Data("{\"a\":2}\n".utf8)
        let error = #expect(throws: ProtocolError.self) { try ResultMessage(frames: corrupted) }
        #expect(error?.code == .checksum)
    }

    @Test func sha256MatchesKnownVectors() {
        #expect(SHA256.hex(of: Data()) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.hex(of: Data("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    @Test(arguments: [
        ([Data("x".utf8)], ProtocolError.Code.frames),
        ([Data("baton/9".utf8), Data("run".utf8), Data("{}".utf8)], .version),
        ([Data("baton/1".utf8), Data("ack".utf8), Data("{}".utf8)], .kind),
        ([Data("baton/1".utf8), Data("run".utf8), Data("not json".utf8)], .header),
        ([Data("baton/1".utf8), Data("run".utf8), Data("{\"job\":\"j\"}".utf8)], .header),
    ])
    func malformedRunRequestsAreRejected(frames: [Data], code: ProtocolError.Code) {
        let error = #expect(throws: ProtocolError.self) { try Wire.decode(RunRequest.self, from: frames) }
        #expect(error?.code == code)
    }

    /// `permanent` travels, and a report without it (an older processor) is not permanent.
    @Test func failureReportPermanence() throws {
        let report = FailureReport(runID: "j@2026-01-01T00:00:00.000Z", part: 0, processor: "p", reason: "not executable", permanent: true)
        #expect(try Wire.decode(FailureReport.self, from: Wire.encode(report)).message == report)
        let older = [
            Data("baton/1".utf8), Data("nack".utf8),
            Data(#"{"runId":"j@2026-01-01T00:00:00.000Z","part":0,"processor":"p","reason":"r","handBack":false}"#.utf8),
        ]
        #expect(try Wire.decode(FailureReport.self, from: older).message.permanent == false)
    }

    @Test func missingFieldIsNamed() {
        let frames = [Data("baton/1".utf8), Data("run".utf8), Data("{\"job\":\"j\",\"runId\":\"r\"}".utf8)]
        let error = #expect(throws: ProtocolError.self) { try Wire.decode(RunRequest.self, from: frames) }
        #expect(error?.reason.contains("logicalTime") == true)
    }

    @Test func badFieldValuesAreRejected() {
        let header = ResultHeader(runID: "../etc", job: "j", logicalTime: time, part: 3, parts: 2, size: 0, sha256: "zz")
        let error = #expect(throws: ProtocolError.self) { try header.validate() }
        #expect(error?.code == .field)
        #expect(throws: ProtocolError.self) { try JobName.validate("bad name", field: "job") }
    }

    @Test func statusEventRoundTrip() throws {
        let event = StatusEvent(
            type: EventType.runStarted,
            source: "algorithm",
            instance: "h:1",
            seq: 7,
            time: time,
            job: "j",
            run: "j@x",
            attributes: ["lateness_ms": "0.4"]
        )
        let decoded = try StatusEvent(frames: event.frames)
        #expect(decoded == event)
        var wrongTopic = event.frames
        wrongTopic[0] = Data("run.finished".utf8)
        #expect(throws: ProtocolError.self) { try StatusEvent(frames: wrongTopic) }
    }

    @Test(
        arguments: [
            ("baton:progress 42", 42.0, nil),
            ("baton:progress 42.5% fitting the model", 42.5, "fitting the model"),
            ("baton:progress   100%", 100.0, nil),
        ] as [(String, Double, String?)]
    )
    func progressLinesParse(line: String, percent: Double, message: String?) throws {
        let progress = try #require(ProgressLine(line))
        #expect(progress.percent == percent)
        #expect(progress.message == message)
    }

    @Test(arguments: ["progress 42", "baton:progress", "baton:progress lots", "baton:progress 101%", "baton:progress -1"])
    func otherLinesAreNotProgress(line: String) {
        #expect(ProgressLine(line) == nil)
    }
}

struct StatusEventValidationTests {
    private func frames(_ json: String, topic: String = "run.started", version: String = "baton/1") -> [Data] {
        [Data(topic.utf8), Data(version.utf8), Data(json.utf8)]
    }

    @Test func anEventAsPublishedIsValid() throws {
        let event = StatusEvent(
            type: "run.started",
            source: "algorithm",
            instance: "h:1",
            seq: 3,
            time: Date(timeIntervalSince1970: 1_774_746_000),
            run: "j@1"
        )
        #expect(try StatusEvent.validated(frames: event.frames) == event)
    }

    /// What a subscriber doing `json.loads(body)["seq"]` would crash on never passes.
    @Test func malformedEventsAreRejectedWithTheirCode() {
        let valid = #"{"type":"run.started","source":"s","instance":"i","seq":1,"time":"2026-01-01T00:00:00.000Z"}"#
        let cases: [([Data], ProtocolError.Code)] = [
            ([Data("run.started".utf8)], .frames),
            (frames(valid, version: "baton/9"), .version),
            (frames("not json"), .header),
            (frames(#"{"type":"run.started","source":"s","instance":"i","time":"2026-01-01T00:00:00.000Z"}"#), .header),
            (frames(valid, topic: "run.other"), .field),
            (
                frames(#"{"type":"RUN\nx","source":"s","instance":"i","seq":1,"time":"2026-01-01T00:00:00.000Z"}"#, topic: "RUN\nx"),
                .field
            ),
            (frames(#"{"type":"run.started","source":"","instance":"i","seq":1,"time":"2026-01-01T00:00:00.000Z"}"#), .field),
            (
                frames(#"{"type":"run.started","source":"s","instance":"a\u001bb","seq":1,"time":"2026-01-01T00:00:00.000Z"}"#),
                .field
            ),
        ]
        for (message, code) in cases {
            #expect(throws: ProtocolError.self) { try StatusEvent.validated(frames: message) }
            do {
                _ = try StatusEvent.validated(frames: message)
            } catch {
                #expect(error.code == code, "\(error)")
            }
        }
        #expect(throws: Never.self) { try StatusEvent.validated(frames: frames(valid)) }
    }
}
