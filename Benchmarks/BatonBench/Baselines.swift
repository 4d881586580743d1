import Foundation
import GRDB
import ZMQ

/// Raw libzmq and SQLite, measured the same way as Baton, in the same run: the denominators of every ratio.
enum Baselines {
    /// One-way PUSH→PULL latency over TCP loopback at a fixed pace, in milliseconds: the sender stamps each
    /// message with the monotonic clock, the receiver (another thread) subtracts it on arrival.
    static func pushPullLatency(size: Int, messages: Int, pace: Duration, port: Int) throws -> [Double] {
        let context = Context()
        let endpoint = "tcp://127.0.0.1:\(port)"
        let ready = DispatchSemaphore(value: 0)
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var latencies: [Double] = []
        nonisolated(unsafe) var failure: (any Error)?
        let receiver = Thread {
            do {
                var pull = try Socket(context: context, type: .pull)
                _ = try pull.bind(endpoint)
                ready.signal()
                for _ in 0..<messages {
                    guard let parts = try pull.receive(), let first = parts.first, first.count >= 8 else { continue }
                    let now = monotonicNanos()
                    let sent = first.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
                    latencies.append(Double(now - sent) / 1e6)
                }
                pull.close()
            } catch {
                failure = error
                ready.signal()
            }
            done.signal()
        }
        receiver.start()
        ready.wait()
        if let failure { throw failure }
        var push = try Socket(context: context, type: .push)
        try push.connect(endpoint)
        Thread.sleep(forTimeInterval: 0.3)
        var payload = Data(count: max(size, 8))
        let step = UInt64(pace / .nanoseconds(1))
        var next = monotonicNanos()
        for _ in 0..<messages {
            next += step
            let now = monotonicNanos()
            if next > now { usleep(UInt32((next - now) / 1000)) }
            var stamp = monotonicNanos()
            withUnsafeBytes(of: &stamp) { payload.replaceSubrange(0..<8, with: $0) }
            _ = try push.send([payload])
        }
        done.wait()
        push.close()
        return latencies
    }

    /// PUSH→PULL messages per second over TCP loopback, sender as fast as it can, for `seconds`.
    static func pushPullThroughput(size: Int, seconds: Double, port: Int) throws -> Double {
        let context = Context()
        let endpoint = "tcp://127.0.0.1:\(port)"
        let ready = DispatchSemaphore(value: 0)
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var rate = 0.0
        let receiver = Thread {
            guard var pull = try? Socket(context: context, type: .pull), (try? pull.bind(endpoint)) != nil else {
                ready.signal()
                done.signal()
                return
            }
            ready.signal()
            _ = try? pull.receive()
            let start = monotonicNanos()
            var count = 0
            while let parts = try? pull.receive(), parts.first?.count != 1 { count += 1 }
            rate = Double(count) / (Double(monotonicNanos() - start) / 1e9)
            pull.close()
            done.signal()
        }
        receiver.start()
        ready.wait()
        var push = try Socket(context: context, type: .push)
        try push.connect(endpoint)
        let payload = Data(count: max(size, 2))
        let end = monotonicNanos() + UInt64(seconds * 1e9)
        while monotonicNanos() < end {
            for _ in 0..<1000 { _ = try push.send([payload]) }
        }
        _ = try push.send([Data([0])])  // the end marker: one byte
        done.wait()
        push.close()
        return rate
    }

    /// Rows per second inserted into SQLite (WAL, synchronous=FULL, GRDB: Baton's stores' settings) in transactions
    /// of `batch` rows, each row `size` bytes, for `seconds`, in `directory`.
    static func sqliteInserts(directory: String, batch: Int, size: Int, seconds: Double) throws -> Double {
        let path = directory + "/baseline-\(batch).sqlite"
        var configuration = GRDB.Configuration()
        configuration.busyMode = .timeout(30)
        let pool = try DatabasePool(path: path, configuration: configuration)
        try pool.writeWithoutTransaction { try $0.execute(sql: "PRAGMA synchronous = FULL") }  // as Baton's stores
        try pool.write { db in
            try db.execute(sql: "CREATE TABLE rows (run_id TEXT NOT NULL, part INTEGER NOT NULL, data BLOB, PRIMARY KEY (run_id, part))")
        }
        let blob = Data(count: size)
        var inserted = 0
        let start = monotonicNanos()
        let end = start + UInt64(seconds * 1e9)
        while monotonicNanos() < end {
            let first = inserted
            try pool.write { db in
                for index in first..<(first + batch) {
                    try db.execute(sql: "INSERT INTO rows VALUES (?, 0, ?)", arguments: ["r\(index)", blob])
                }
            }
            inserted += batch
        }
        return Double(inserted) / (Double(monotonicNanos() - start) / 1e9)
    }
}
