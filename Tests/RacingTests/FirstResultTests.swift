import Racing
import Synchronization
import Testing

struct FirstResultTests {
    struct Failure: Error, Equatable {}

    /// A flag a racer sets (racers escape, so they cannot capture a `Mutex` itself).
    final class Flag: Sendable {
        private let value = Mutex(false)
        var isSet: Bool { value.withLock { $0 } }
        func set(_ on: Bool) { value.withLock { $0 = on } }
    }

    /// Returns once the calling task is cancelled: a racer that never wins on its own.
    static func untilCancelled() async {
        let (stream, _) = AsyncStream<Never>.makeStream()
        for await _ in stream {}
    }

    @Test func theFirstResultWinsAndTheOthersAreCancelledAndAwaited() async {
        let loserCancelled = Flag()
        let result = await firstResult(
            of: { 1 },
            {
                await Self.untilCancelled()
                loserCancelled.set(Task.isCancelled)
                return nil
            }
        )
        #expect(result == 1)
        // The group awaited the loser: it has seen its cancellation by the time the race returns.
        #expect(loserCancelled.isSet)
    }

    @Test func nilIsNoVerdict() async {
        let (gate, open) = AsyncStream<Void>.makeStream()
        let result: Int? = await firstResult(
            of: {
                // Ends first, without a verdict; the race must go on.
                open.yield()
                open.finish()
                return nil
            },
            {
                for await _ in gate {}
                return 2
            }
        )
        #expect(result == 2)
    }

    @Test func everyRacerWithoutAVerdictGivesNil() async {
        let result: Int? = await firstResult(of: { nil }, { nil })
        #expect(result == nil)
    }

    @Test func aResultThatLostIsHandedToLate() async {
        let late = Mutex<[Int]>([])
        let result = await firstResult(
            of: { 1 },
            {
                await Self.untilCancelled()
                return 2
            },
            late: { value in late.withLock { $0.append(value) } }
        )
        #expect(result == 1)
        #expect(late.withLock { $0 } == [2])
    }

    @Test func anErrorBeforeAnyResultEndsTheRace() async {
        await #expect(throws: Failure.self) {
            _ = try await firstResult(
                of: { () async throws -> Int? in throw Failure() },
                {
                    await Self.untilCancelled()
                    return 2
                }
            )
        }
    }

    @Test func aLosersErrorIsIgnored() async throws {
        let result = try await firstResult(
            of: { () async throws -> Int? in 1 },
            {
                await Self.untilCancelled()
                throw Failure()
            }
        )
        #expect(result == 1)
    }

    @Test func cancellingTheCallerCancelsEveryRacer() async {
        let race = Task {
            await firstResult(
                of: { () async -> Int? in
                    await Self.untilCancelled()
                    return nil
                },
                {
                    await Self.untilCancelled()
                    return nil
                }
            )
        }
        race.cancel()
        #expect(await race.value == nil)
    }
}
