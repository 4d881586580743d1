import AlgorithmService
import Foundation
import Messaging
import PropertyBased
import Testing

/// The table of processors waiting for work: each ask answered once and never beyond its credit, oldest first.
struct WorkRequestsTests {
    static func id(_ name: String) -> Data { Data(name.utf8) }
    static func ask(_ seq: UInt64, credit: Int = 1) -> WorkRequest { WorkRequest(processor: "p", seq: seq, credit: credit) }

    @Test
    func asksAreAnsweredInOrderOnceAndWithinTheirCredit() {
        let requests = WorkRequests()
        #expect(requests.take() == nil)
        #expect(requests.offer(Self.ask(1), from: Self.id("a")))
        #expect(requests.offer(Self.ask(1, credit: 2), from: Self.id("b")))
        // The same ask again: nothing new.
        #expect(!requests.offer(Self.ask(1), from: Self.id("a")))
        #expect(requests.take()?.id == Self.id("a"))
        #expect(!requests.offer(Self.ask(1), from: Self.id("a")), "an answered ask repeated is not answered again")
        #expect(requests.take()?.id == Self.id("b"))
        #expect(requests.take()?.id == Self.id("b"))
        #expect(requests.take() == nil)
        #expect(requests.offer(Self.ask(2), from: Self.id("a")))
        #expect(requests.waiting == 1)
    }

    @Test
    func aCreditGivenBackIsFirstInLineAndADroppedProcessorIsForgotten() throws {
        let requests = WorkRequests()
        requests.offer(Self.ask(1), from: Self.id("a"))
        requests.offer(Self.ask(1), from: Self.id("b"))
        let a = try #require(requests.take())
        requests.giveBack(a)
        #expect(requests.take()?.id == Self.id("a"))
        requests.drop(Self.id("b"))
        #expect(requests.take() == nil)
        // A higher ask replaces what was left of a lower one.
        requests.offer(Self.ask(3, credit: 5), from: Self.id("c"))
        requests.offer(Self.ask(4, credit: 1), from: Self.id("c"))
        #expect(requests.take()?.seq == 4)
        #expect(requests.take() == nil)
    }

    @Test
    func aBatchAskTakesSmallStoreTasksOrOneOtherTaskNeverBoth() throws {
        let requests = WorkRequests()
        requests.offer(WorkRequest(processor: "a", seq: 1, batch: 3), from: Self.id("a"))
        requests.offer(Self.ask(1), from: Self.id("b"))
        #expect(requests.credit == 4)
        #expect(requests.take(batchable: true)?.id == Self.id("a"))
        #expect(requests.take(batchable: false)?.id == Self.id("b"), "a batch ask partly answered takes no task that goes alone")
        #expect(requests.take(batchable: true)?.id == Self.id("a"))
        #expect(requests.take(batchable: true)?.id == Self.id("a"))
        #expect(requests.take(batchable: true) == nil, "three asked for, three sent")
        // A task that goes alone takes a batch ask whole, and given back, the whole ask comes back.
        requests.offer(WorkRequest(processor: "c", seq: 1, batch: 3), from: Self.id("c"))
        let alone = try #require(requests.take(batchable: false))
        #expect(requests.take(batchable: true) == nil)
        requests.giveBack(alone)
        #expect(requests.credit == 3)
        #expect(requests.take(batchable: false)?.id == Self.id("c"))
    }

    /// A batch ask is answered once, by what the sender had for it: a processor asking again while the rest of
    /// its batch is on the way goes to the back of the line, so the others get their turn.
    @Test
    func aBatchAskIsAnsweredOnceAndTheNextAskWaitsItsTurn() throws {
        let requests = WorkRequests()
        requests.offer(WorkRequest(processor: "a", seq: 1, batch: 500), from: Self.id("a"))
        requests.offer(WorkRequest(processor: "b", seq: 1, batch: 500), from: Self.id("b"))
        let first = try #require(requests.take(batchable: true))
        #expect(first.id == Self.id("a"))
        requests.endBatches([first])
        #expect(requests.waiting == 1)
        requests.offer(WorkRequest(processor: "a", seq: 2, batch: 500), from: Self.id("a"))
        let second = try #require(requests.take(batchable: true))
        #expect(second.id == Self.id("b"), "a asked again, after b")
        requests.endBatches([second])
        // An ask ended and then repeated (the same number, after a reconnect) is not answered again.
        #expect(!requests.offer(WorkRequest(processor: "b", seq: 1, batch: 500), from: Self.id("b")))
        #expect(requests.take(batchable: true)?.id == Self.id("a"))
    }

    /// Random batch and plain asks, takes of tasks that may or may not go in a batch, give-backs and drops: an
    /// ask is answered by at most its credit (plain), or by at most `batch` batchable tasks or one other (batch).
    @Test
    func noBatchAskIsAnsweredWithMoreOrOtherThanItAllows() async {
        await propertyCheck(count: 300, input: Gen.int(in: 0...199).array(of: 1...200)) { tape in
            let requests = WorkRequests()
            var asked: [String: WorkRequest] = [:]
            var taken: [String: (batchable: Int, alone: Int)] = [:]
            var held: [(WorkRequests.Taker, Bool)] = []
            for value in tape {
                let name = "p\(value % 3)"
                switch value % 5 {
                case 0, 1:
                    let seq = UInt64(1 + (value / 5) % 6)
                    let key = "\(name):\(seq)"
                    // The first form an ask number came with is what the processor asked for with it.
                    let ask =
                        asked[key]
                        ?? (value % 2 == 0
                            ? WorkRequest(processor: name, seq: seq, batch: 1 + value % 4)
                            : WorkRequest(processor: name, seq: seq, credit: 1 + value % 3))
                    asked[key] = ask
                    requests.offer(ask, from: Self.id(name))
                case 2, 3:
                    let batchable = value % 3 != 0
                    guard let taker = requests.take(batchable: batchable) else { continue }
                    let key = "\(taker.processor):\(taker.seq)"
                    var count = taken[key] ?? (0, 0)
                    if batchable { count.batchable += 1 } else { count.alone += 1 }
                    taken[key] = count
                    held.append((taker, batchable))
                    guard let ask = asked[key] else {
                        Issue.record("answered an ask never made: \(key)")
                        continue
                    }
                    if let batch = ask.batch {
                        #expect(count.alone == 0 || (count.alone == 1 && count.batchable == 0), "ask \(key): a lone task with others")
                        #expect(count.batchable <= batch, "ask \(key) answered beyond its batch")
                    } else {
                        #expect(count.batchable + count.alone <= ask.credit, "ask \(key) answered beyond its credit")
                    }
                default:
                    if value % 10 == 9 {
                        // The sender's pass is over: its batch asks end.
                        requests.endBatches(held.map(\.0))
                    } else if value % 10 == 4, let (taker, batchable) = held.popLast() {
                        requests.giveBack(taker)
                        let key = "\(taker.processor):\(taker.seq)"
                        var count = taken[key] ?? (0, 0)
                        if batchable { count.batchable -= 1 } else { count.alone -= 1 }
                        taken[key] = count
                    } else {
                        requests.drop(Self.id(name))
                    }
                }
            }
        }
    }

    @Test
    func theTableIsBounded() {
        let requests = WorkRequests(capacity: 10)
        for index in 0..<100 { requests.offer(Self.ask(1), from: Self.id("p\(index)")) }
        #expect(requests.waiting == 10)
        #expect(requests.take()?.id == Self.id("p90"), "the oldest are forgotten first")
    }

    /// Random asks (repeated, out of order, from a few processors), takes, give-backs and drops: no ask is ever
    /// answered beyond its credit, however often it is repeated or its processor dropped and back.
    @Test
    func noAskIsAnsweredBeyondItsCredit() async {
        await propertyCheck(count: 300, input: Gen.int(in: 0...99).array(of: 1...200)) { tape in
            Self.replay(tape)
        }
    }

    static func replay(_ tape: [Int]) {
        let requests = WorkRequests()
        var credit: [String: Int] = [:]
        var taken: [String: Int] = [:]
        var held: [WorkRequests.Taker] = []
        for value in tape {
            let name = "p\(value % 3)"
            switch value % 4 {
            case 0, 1:
                let ask = Self.ask(UInt64(1 + (value / 4) % 6), credit: 1 + value % 3)
                // The first credit an ask number came with is what the processor asked for with it.
                if credit["\(name):\(ask.seq)"] == nil { credit["\(name):\(ask.seq)"] = ask.credit }
                requests.offer(WorkRequest(processor: name, seq: ask.seq, credit: credit["\(name):\(ask.seq)"] ?? 1), from: Self.id(name))
            case 2:
                guard let taker = requests.take() else { continue }
                let key = "\(taker.processor):\(taker.seq)"
                taken[key, default: 0] += 1
                #expect(taken[key, default: 0] <= credit[key, default: 0], "ask \(key) answered beyond its credit")
                held.append(taker)
            default:
                if value % 8 == 3, let taker = held.popLast() {
                    requests.giveBack(taker)
                    taken["\(taker.processor):\(taker.seq)", default: 0] -= 1
                } else {
                    requests.drop(Self.id(name))
                }
            }
        }
    }
}
