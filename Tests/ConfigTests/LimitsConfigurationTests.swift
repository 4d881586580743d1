import Foundation
import Config
import Testing

struct LimitsConfigurationTests {
    @Test func defaultsBoundEverySocket() throws {
        let limits = try Configuration.parse(yaml: "data_dir: /a\n", source: "t").limits
        #expect(limits.messageBytes == 1 << 20)
        #expect(limits.resultBytes == 2 << 30)
        #expect(limits.subscriptionBytes == 1024)
        #expect(limits.subscriptions == 1000)
        #expect(limits.receiveQueue == 1000)
        #expect(limits.rejectionsPerSecond == 10)
    }

    @Test func limitsParse() throws {
        let yaml = """
            limits:
              message_size: 64KiB
              result_size: 4GiB
              subscription_size: 256
              subscriptions: 20
              receive_queue: 50
              rejections_per_second: 3
            """
        let limits = try Configuration.parse(yaml: yaml, source: "t").limits
        #expect(limits.messageBytes == 64 << 10)
        #expect(limits.resultBytes == 4 << 30)
        #expect(limits.subscriptionBytes == 256)
        #expect(limits.subscriptions == 20)
        #expect(limits.receiveQueue == 50)
        #expect(limits.rejectionsPerSecond == 3)
    }

    @Test(arguments: [
        ("limits:\n  message_size: 1KiB\n", "limits.message_size", "from 4096 bytes"),
        ("limits:\n  result_size: big\n", "limits.result_size", "expected a size"),
        ("limits:\n  subscriptions: 0\n", "limits.subscriptions", "must be from 1"),
        ("limits:\n  receive_queue: -5\n", "limits.receive_queue", "must be from 1"),
        ("limits:\n  colour: red\n", "limits.colour", "unknown"),
    ])
    func badLimitsNameTheirField(yaml: String, field: String, problem: String) throws {
        let error = #expect(throws: ConfigurationError.self) { try Configuration.parse(yaml: yaml, source: "t") }
        #expect(error?.field == field)
        #expect(error?.problem.contains(problem) == true, "\(String(describing: error))")
    }
}
