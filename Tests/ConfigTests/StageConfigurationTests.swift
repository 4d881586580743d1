import Config
import Foundation
import Messaging
import Testing

struct StageConfigurationTests {
    func job(_ stages: String) -> String {
        """
        jobs:
          - name: j
            every: 1h
            command: [python3, a.py]
            stages:
        \(stages)
        """
    }

    @Test func stagesBecomeAPipelineEndingInTheStore() throws {
        let yaml = job(
            """
                  - name: cut
                    builtin: split
                    lines: 100
                  - name: score
                    command: [python3, score.py]
                    input: file
                    env: {MODEL: m1}
                    timeout: 90s
                  - name: total
                    mode: merge
                    command: [python3, total.py]
            """
        )
        let configuration = try Configuration.parse(yaml: yaml, source: "t")
        var processor = Configuration.Processor()
        processor.timeout = .seconds(600)
        let pipeline = configuration.jobs[0].pipeline(processor: processor)
        #expect(pipeline.stages.map(\.name) == ["cut", "score", "total", "store"])
        #expect(pipeline.stages[0] == StageSpec(name: "cut", builtin: .split, lines: 100))
        #expect(
            pipeline.stages[1]
                == StageSpec(name: "score", command: ["python3", "score.py"], env: ["MODEL": "m1"], input: "file", timeoutMs: 90_000)
        )
        #expect(pipeline.stages[2].mode == .merge && pipeline.stages[2].timeoutMs == 600_000)
        #expect(pipeline.stages[3] == .store)
        #expect(pipeline.version.count == 16 && !pipeline.isDefault)
        // The version follows the definition: any change to a stage is a new pipeline.
        var changed = configuration.jobs[0]
        changed.stages[1].command.argv = ["python3", "score2.py"]
        #expect(changed.pipeline(processor: processor).version != pipeline.version)
        #expect(configuration.jobs[0].pipeline(processor: processor).version == pipeline.version)
    }

    @Test func aJobWithoutStagesHasTheDefaultPipeline() throws {
        let configuration = try Configuration.parse(yaml: "jobs:\n  - name: j\n    every: 1h\n    builtin: demo\n", source: "t")
        #expect(configuration.jobs[0].pipeline(processor: Configuration.Processor()) == .default)
    }

    @Test(arguments: [
        ("      - name: a\n        command: [x]\n        builtin: store\n", "jobs[0].stages[0].builtin"),
        ("      - name: a\n", "jobs[0].stages[0].command"),
        ("      - command: [x]\n", "jobs[0].stages[0].name"),
        ("      - name: a\n        builtin: split\n", "jobs[0].stages[0].lines"),
        ("      - name: a\n        builtin: split\n        lines: 0\n", "jobs[0].stages[0].lines"),
        ("      - name: a\n        builtin: store\n      - name: b\n        command: [x]\n", "jobs[0].stages[0].builtin"),
        ("      - name: a\n        command: [x]\n      - name: a\n        command: [y]\n", "jobs[0].stages[1].name"),
        ("      - name: a\n        command: [x]\n        mode: fan\n", "jobs[0].stages[0].mode"),
        ("      - name: a\n        command: [x]\n        colour: red\n", "jobs[0].stages[0].colour"),
        ("      - name: a\n        builtin: store\n        env: {A: b}\n", "jobs[0].stages[0].env"),
        ("      - name: bad/name\n        command: [x]\n", "jobs[0].stages[0].name"),
    ])
    func badStagesAreNamedByTheirField(stages: String, field: String) {
        let error = #expect(throws: ConfigurationError.self) {
            try Configuration.parse(yaml: job(stages), source: "t").validate(source: "t")
        }
        #expect(error?.field == field, "\(error.map { "\($0)" } ?? "")")
    }
}
