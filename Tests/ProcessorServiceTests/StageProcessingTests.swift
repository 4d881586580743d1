import Foundation
import Messaging
import ProcessorService
import Testing
import ZMQ

/// A processor given tasks of a pipeline's stages: it runs the stage the task carries and sends its output back
/// with the ack. Expected outputs are computed here from the inputs.
struct StageProcessingTests {
    typealias Harness = ResultProcessorTests.Harness

    static func task(_ payload: String, stage: StageSpec, index: Int = 0, part: Int = 0, parts: Int = 1) -> [Data] {
        let data = Data(payload.utf8)
        var header = ResultHeader(
            runID: ResultProcessorTests.run,
            job: "j",
            logicalTime: ResultProcessorTests.logicalTime,
            part: part,
            parts: parts,
            size: data.count,
            sha256: SHA256.hex(of: data)
        )
        header.stageIndex = index
        header.stages = index + 2
        header.stage = stage
        return ResultMessage(header: header, payload: data).frames
    }

    static func merge(_ inputs: [String], stage: StageSpec) -> [Data] {
        let data = inputs.map { Data($0.utf8) }
        let digests = data.map { PartDigest(size: $0.count, sha256: SHA256.hex(of: $0)) }
        var header = ResultHeader(
            runID: ResultProcessorTests.run,
            job: "j",
            logicalTime: ResultProcessorTests.logicalTime,
            size: digests.reduce(0) { $0 + $1.size },
            sha256: PartDigest.combined(digests)
        )
        header.stageIndex = 1
        header.stages = 3
        header.stage = stage
        header.inputs = digests
        return ResultMessage(header: header, inputs: data).frames
    }

    /// The ack that settles the task, after its lease renewals (one at the start, more if the stage takes a third
    /// of the lease), with its outputs checked against their digests.
    static func ack(_ harness: Harness) async throws -> (ack: Acknowledgement, outputs: [String]) {
        while true {
            let frames = try #require(try await harness.acks.receive(timeout: .seconds(30)), "no answer from the processor")
            let kind = try Wire.kind(of: frames)
            if kind == LeaseRenewal.kind { continue }
            try #require(kind == Acknowledgement.kind, "\(String(decoding: frames[2], as: UTF8.self))")
            let (ack, outputs) = try Acknowledgement.decode(frames: frames)
            return (ack, outputs.map { String(decoding: $0, as: UTF8.self) })
        }
    }

    @Test(.timeLimit(.minutes(1)))
    func aCommandStageHandsBackEveryFileOfItsOutputDirectoryInNameOrder() async throws {
        let stage = StageSpec(
            name: "fan",
            command: ["sh", "-c", "while read l; do echo \"$l$BATON_PART\" > \"$BATON_OUTPUT_DIR/$l\"; done"]
        )
        try await ResultProcessorTests.with { harness in
            try await harness.send(Self.task("b\nc\na\n", stage: stage, part: 3, parts: 4))
            let (ack, outputs) = try await Self.ack(harness)
            #expect(ack.stage == 0 && ack.part == 3 && !ack.duplicate)
            #expect(outputs == ["a3\n", "b3\n", "c3\n"])
        }
    }

    @Test(.timeLimit(.minutes(1)))
    func aMergeGetsEveryInputInPartOrderOnStdinAndAsFiles() async throws {
        let stage = StageSpec(
            name: "total",
            mode: .merge,
            command: ["sh", "-c", "{ cat; ls \"$BATON_INPUT_DIR\" | tr '\\n' ,; cat \"$BATON_INPUT_DIR/000001\"; } > \"$BATON_OUTPUT\""]
        )
        try await ResultProcessorTests.with { harness in
            try await harness.send(Self.merge(["1\n", "2\n", "3\n"], stage: stage))
            let (ack, outputs) = try await Self.ack(harness)
            #expect(ack.stage == 1)
            #expect(outputs == ["1\n2\n3\n000000,000001,000002,2\n"])
        }
    }

    @Test(.timeLimit(.minutes(1)))
    func theBuiltinSplitHandsBackItsPartsAndAStageThatWritesNothingHandsOnNothing() async throws {
        try await ResultProcessorTests.with { harness in
            try await harness.send(Self.task("1\n2\n3\n", stage: StageSpec(name: "cut", builtin: .split, lines: 2)))
            #expect(try await Self.ack(harness).outputs == ["1\n2\n", "3\n"])
            try await harness.send(Self.task("x\n", stage: StageSpec(name: "quiet", command: ["true"]), index: 1))
            let (ack, outputs) = try await Self.ack(harness)
            #expect(ack.stage == 1 && outputs.isEmpty)
        }
    }

    @Test(.timeLimit(.minutes(1)))
    func aFailingStageIsReportedWithItsStageAndStderr() async throws {
        let stage = StageSpec(name: "boom", command: ["sh", "-c", "echo kaput >&2; exit 3"])
        try await ResultProcessorTests.with { harness in
            try await harness.send(Self.task("x\n", stage: stage, index: 1))
            var report = try #require(try await harness.acks.receive(timeout: .seconds(30)))
            while try Wire.kind(of: report) == LeaseRenewal.kind {
                report = try #require(try await harness.acks.receive(timeout: .seconds(30)))
            }
            let failure = try Wire.decode(FailureReport.self, from: report).message
            #expect(failure.stage == 1 && !failure.handBack && !failure.permanent)
            #expect(failure.reason.contains("kaput"), "\(failure.reason)")
        }
    }

    @Test(.timeLimit(.minutes(1)))
    func outputsOverTheAckLimitAreAPermanentFailureNotASilentDrop() async throws {
        try await ResultProcessorTests.with(maxAckBytes: 4) { harness in
            try await harness.send(Self.task("1\n2\n3\n", stage: StageSpec(name: "cut", builtin: .split, lines: 1)))
            var frames = try #require(try await harness.acks.receive(timeout: .seconds(30)))
            while try Wire.kind(of: frames) == LeaseRenewal.kind {
                frames = try #require(try await harness.acks.receive(timeout: .seconds(30)))
            }
            let failure = try Wire.decode(FailureReport.self, from: frames).message
            #expect(failure.permanent && failure.stage == 0)
            #expect(failure.reason.contains("over limits.result_size"), "\(failure.reason)")
        }
    }
}
