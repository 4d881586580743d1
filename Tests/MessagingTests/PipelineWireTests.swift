import Foundation
import Messaging
import Testing

struct PipelineWireTests {
    let inputs = [Data("a\n".utf8), Data(), Data("ccc\n".utf8)]

    func mergeHeader(_ inputs: [Data]) -> ResultHeader {
        let digests = inputs.map { PartDigest(size: $0.count, sha256: SHA256.hex(of: $0)) }
        var header = ResultHeader(
            runID: "j@2026-01-01T00:00:00.000Z",
            job: "j",
            logicalTime: Date(timeIntervalSince1970: 1_767_225_600),
            size: digests.reduce(0) { $0 + $1.size },
            sha256: PartDigest.combined(digests)
        )
        header.stageIndex = 1
        header.stages = 3
        header.stage = StageSpec(name: "total", mode: .merge, command: ["python3", "total.py"])
        header.inputs = digests
        return header
    }

    @Test func aMergeTravelsAsOneFrameperInputAndIsCheckedFrameByFrame() throws {
        let message = ResultMessage(header: mergeHeader(inputs), inputs: inputs)
        let frames = message.frames
        #expect(frames.count == 3 + inputs.count)
        let decoded = try ResultMessage(frames: frames)
        #expect(decoded.inputs == inputs)
        #expect(decoded.header.stage?.name == "total")
        // A changed input, a missing frame or a header whose total disagrees is refused.
        var tampered = frames
        tampered[5] = Data("ccd\n".utf8)
        #expect(throws: ProtocolError.self) { try ResultMessage(frames: tampered) }
        #expect(throws: ProtocolError.self) { try ResultMessage(frames: Array(frames.dropLast())) }
        var header = mergeHeader(inputs)
        header.size += 1
        #expect(throws: ProtocolError.self) { try ResultMessage(frames: Wire.encode(header, payloads: inputs)) }
    }

    @Test func aSinglePartStillRefusesExtraFrames() {
        let payload = Data("x".utf8)
        let header = ResultHeader(
            runID: "j@2026-01-01T00:00:00.000Z",
            job: "j",
            logicalTime: Date(timeIntervalSince1970: 1_767_225_600),
            size: 1,
            sha256: SHA256.hex(of: payload)
        )
        #expect(throws: ProtocolError.self) { try ResultMessage(frames: Wire.encode(header, payloads: [payload, payload])) }
        #expect(throws: ProtocolError.self) { try Wire.decode(ResultHeader.self, from: Wire.encode(header, payloads: [payload, payload])) }
    }

    @Test func anAckCarriesItsOutputsCheckedAgainstTheirDigests() throws {
        let outputs = [Data("one\n".utf8), Data("two\n".utf8)]
        let ack = Acknowledgement(
            runID: "j@2026-01-01T00:00:00.000Z",
            part: 4,
            processor: "p",
            duplicate: false,
            stage: 0,
            outputs: outputs.map { PartDigest(size: $0.count, sha256: SHA256.hex(of: $0)) }
        )
        let decoded = try Acknowledgement.decode(frames: Wire.encode(ack, payloads: outputs))
        #expect(decoded.ack == ack && decoded.outputs == outputs)
        #expect(throws: ProtocolError.self) { try Acknowledgement.decode(frames: Wire.encode(ack, payloads: [outputs[0]])) }
        #expect(throws: ProtocolError.self) { try Acknowledgement.decode(frames: Wire.encode(ack, payloads: outputs.reversed())) }
        // An ack without outputs (the store stage, or a job without stages) is as before.
        let plain = Acknowledgement(runID: "j@2026-01-01T00:00:00.000Z", part: 0, processor: "p", duplicate: true)
        #expect(try Acknowledgement.decode(frames: Wire.encode(plain)).outputs.isEmpty)
    }

    @Test func hostileStagesAreRefused() {
        var header = mergeHeader(inputs)
        header.stageIndex = 3
        #expect(throws: ProtocolError.self) { try header.validate() }
        header = mergeHeader(inputs)
        header.stage?.command = [""]
        #expect(throws: ProtocolError.self) { try header.validate() }
        header = mergeHeader(inputs)
        header.stage = StageSpec(name: "s", builtin: .split, lines: 0)
        #expect(throws: ProtocolError.self) { try header.validate() }
    }
}
