import Foundation
import Config
import TestSupport
import Testing

/// The shipped configuration files and the compose stack stay valid.
struct DeploymentFilesTests {
    @Test(arguments: ["compose/baton.yaml", "examples/python.yaml", "examples/python-processor.yaml", "examples/pipeline/pipeline.yaml"])
    func shippedConfigurationsLoad(path: String) throws {
        let configuration = try Configuration.load(path: "\(TestStack.repository)/\(path)", environment: [:])
        #expect(!configuration.jobs.isEmpty)
    }

    /// `docker-compose config` validates the stack (no Docker engine runs here, so it is not started).
    @Test func composeFileIsValidAndProcessorScales() async throws {
        let candidates = ["/usr/bin/docker-compose", "/usr/local/bin/docker-compose"]
        let executable = try #require(
            candidates.first(where: FileManager.default.isExecutableFile(atPath:)),
            "docker-compose is not installed: run scripts/install-deps.sh --test"
        )
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = ["-f", "\(TestStack.repository)/compose/docker-compose.yml", "config"]
        let output = Pipe()
        let errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        // Read and waited for on a thread of its own, not one of the two the whole test run shares.
        let (text, problems, status) = await Blocking.onThread {
            let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            let problems = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            return (text, problems, process.terminationStatus)
        }
        #expect(status == 0, "\(problems)")
        for service in ["logger:", "scheduler:", "algorithm:", "processor:"] {
            #expect(text.contains("  \(service)"), "compose config lacks \(service)")
        }
        // A scalable service has no fixed container name and publishes no host port.
        let processor = text.components(separatedBy: "  processor:").last ?? ""
        let processorBlock = processor.components(separatedBy: "\n  scheduler:").first ?? processor
        #expect(!processorBlock.contains("container_name"))
        #expect(!processorBlock.contains("ports:"))
    }
}
