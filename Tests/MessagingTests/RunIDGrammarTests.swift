import Foundation
import Messaging
import PropertyBased
import Testing

/// The grammar of job names and run ids (docs/PROTOCOL.md, "Names and run ids"): everything the scheduler
/// makes is accepted, and every message that carries an id refuses one outside the grammar when decoded.
struct RunIDGrammarTests {
    static let time = Date(timeIntervalSince1970: 1_774_746_000)
    static let nameFirst = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
    static let nameRest = nameFirst + Array("._-")

    /// A job name from the grammar: a letter or digit, then up to 127 of letters, digits, `.`, `_`, `-`.
    static let names = Gen.element(of: nameFirst).map { String($0 ?? "a") }
    static let tails = Gen.element(of: nameRest).map { $0 ?? "a" }.array(of: 0...127).map { String($0) }

    /// Any name and any millisecond from 1970 to 9999 make an id the grammar accepts, in every form the
    /// scheduler makes it: the slot's, a manual run's (`~manual`), a backfill rerun's (`~N`).
    @Test func idsTheSchedulerMakesAreAccepted() async {
        await propertyCheck(count: 500, input: Self.names, Self.tails, Gen.int(in: 0...253_402_300_799_999), Gen.int(in: 2...999_999)) {
            first,
            rest,
            milliseconds,
            count in
            let job = first + rest
            let id = RunID.make(job: job, logicalTime: Timestamp.date(milliseconds: Int64(milliseconds)))
            #expect(throws: Never.self) { try JobName.validate(job, field: "job") }
            for candidate in [id, id + "~manual", id + "~\(count)"] {
                #expect(throws: Never.self, "\(candidate)") { try RunID.validate(candidate, field: "runId", job: job) }
                #expect(RunID.parse(candidate)?.job == job)
            }
        }
    }

    @Test func partsAreSplit() {
        #expect(
            RunID.parse("hourly.v2@2026-03-29T01:00:00.000Z~7")
                == RunID.Parts(job: "hourly.v2", timestamp: "2026-03-29T01:00:00.000Z", suffix: "7")
        )
        #expect(RunID.parse("a@2026-03-29T01:00:00.000Z")?.suffix == nil)
    }

    static let hostileIDs: [String] = [
        "", "NaN", "nan", "Infinity", "-1", "0", "j@1", "j@x", "job@t", "@2026-03-29T01:00:00.000Z", "j@",
        "j@2026-03-29T01:00:00.000Z~", "j@2026-03-29T01:00:00.000Z~1", "j@2026-03-29T01:00:00.000Z~0", "j@2026-03-29T01:00:00.000Z~02",
        "j@2026-03-29T01:00:00.000Z~-3", "j@2026-03-29T01:00:00.000Z~Manual", "j@2026-03-29T01:00:00.000Z~manual~2",
        "j@2026-03-29T01:00:00.000Z~1234567890", "j@2026-03-29T01:00:00Z", "j@2026-03-29T01:00:00.000+00:00",
        "j@2026-03-29 01:00:00.000Z", "j@2026-02-30T01:00:00.000Z", "j@2026-13-01T01:00:00.000Z", "j@2026-03-29T24:00:00.000Z",
        "j@2026-03-29T01:60:00.000Z", "j@2026-03-29T01:00:00.000z", "j@+026-03-29T01:00:00.000Z", "j@2026-03-29T01:00:00.000Z ",
        " j@2026-03-29T01:00:00.000Z", "j@2026-03-29T01:00:00.000Z\n", "j\u{0}@2026-03-29T01:00:00.000Z",
        "j\u{1b}[31m@2026-03-29T01:00:00.000Z", "../etc@2026-03-29T01:00:00.000Z", "a/b@2026-03-29T01:00:00.000Z",
        ".j@2026-03-29T01:00:00.000Z",
        "-j@2026-03-29T01:00:00.000Z", "jöb@2026-03-29T01:00:00.000Z", "j@@2026-03-29T01:00:00.000Z",
        String(repeating: "a", count: 129) + "@2026-03-29T01:00:00.000Z", String(repeating: "x", count: 100_000),
    ]

    @Test(arguments: hostileIDs)
    func hostileRunIDsAreRefused(id: String) {
        #expect(RunID.parse(id) == nil)
        #expect(throws: ProtocolError.self) { try RunID.validate(id, field: "runId") }
    }

    static let hostileNames: [String] = [
        "", ".hidden", "-flag", "_x", "a b", "a/b", "..", "a\u{0}", "a\u{7}", "a\n", "ä", "a@b", "a~b", String(repeating: "a", count: 129),
    ]

    @Test(arguments: hostileNames)
    func hostileJobNamesAreRefused(name: String) {
        #expect(throws: ProtocolError.self) { try JobName.validate(name, field: "job") }
    }

    @Test func longestNameIsAccepted() throws {
        let name = String(repeating: "a", count: 128)
        try JobName.validate(name, field: "job")
        try RunID.validate(RunID.make(job: name, logicalTime: Self.time) + "~manual", field: "runId", job: name)
    }

    /// Every message that carries a run id or a job name refuses a hostile one as a decode error, which the
    /// receivers turn into `message.rejected`.
    @Test(arguments: ["NaN", "", "j@1", "j\u{1}@2026-03-29T01:00:00.000Z", String(repeating: "j", count: 300)])
    func everyMessageRefusesAHostileRunID(id: String) {
        let payload = Data("x".utf8)
        let frames: [[Data]] = [
            Wire.encode(RunRequest(runID: id, job: "j", logicalTime: Self.time, firedAt: Self.time, trigger: .schedule)),
            Wire.encode(RunCancel(runID: id, reason: "test")),
            Wire.encode(RunReport(runID: id, job: "j", state: .finished)),
            Wire.encode(
                ResultHeader(runID: id, job: "j", logicalTime: Self.time, size: payload.count, sha256: SHA256.hex(of: payload)),
                payload: payload
            ),
            Wire.encode(Acknowledgement(runID: id, part: 0, processor: "p", duplicate: false)),
            Wire.encode(LeaseRenewal(runID: id, part: 0, processor: "p")),
            Wire.encode(FailureReport(runID: id, part: 0, processor: "p", reason: "r")),
        ]
        #expect(throws: ProtocolError.self) { try Wire.decode(RunRequest.self, from: frames[0]) }
        #expect(throws: ProtocolError.self) { try Wire.decode(RunCancel.self, from: frames[1]) }
        #expect(throws: ProtocolError.self) { try Wire.decode(RunReport.self, from: frames[2]) }
        #expect(throws: ProtocolError.self) { try ResultMessage(frames: frames[3]) }
        #expect(throws: ProtocolError.self) { try Wire.decode(Acknowledgement.self, from: frames[4]) }
        #expect(throws: ProtocolError.self) { try Wire.decode(LeaseRenewal.self, from: frames[5]) }
        #expect(throws: ProtocolError.self) { try Wire.decode(FailureReport.self, from: frames[6]) }
        let cancel = ControlRequest(command: .cancel, run: id)
        #expect(throws: ProtocolError.self) { try cancel.validate() }
    }

    /// A run id names its job: a request, report or result whose `job` is another job's is refused.
    @Test func aRunIDOfAnotherJobIsRefused() {
        let id = RunID.make(job: "other", logicalTime: Self.time)
        let frames = Wire.encode(RunRequest(runID: id, job: "j", logicalTime: Self.time, firedAt: Self.time, trigger: .schedule))
        let error = #expect(throws: ProtocolError.self) { try Wire.decode(RunRequest.self, from: frames) }
        #expect(error?.code == .field)
        #expect(throws: ProtocolError.self) { try RunReport(runID: id, job: "j", state: .running).validate() }
    }
}
