// A module of its own because the lowest module that races tasks is ZMQ (a receive against its timeout), and a
// general concurrency helper does not belong to the ZeroMQ binding; every module above ZMQ can use it too.

/// Runs `tasks` concurrently and returns the first non-`nil` result; the others are then cancelled and awaited
/// (a task group never leaves a child behind). `nil` is "no verdict": a task that returns it, e.g. a timeout
/// that was cancelled, does not end the race. Returns `nil` when every task returned `nil`.
///
/// - Parameters:
///   - tasks: The racers.
///   - late: Called with each non-`nil` result that lost the race (it was produced while or after the winner
///     was), e.g. to give a message back that a receive took while its timeout won.
public func firstResult<T: Sendable>(
    of tasks: (@Sendable () async -> T?)...,
    late: (T) -> Void = { _ in }
) async -> T? {
    await withTaskGroup(of: T?.self) { group in
        for task in tasks { group.addTask(operation: task) }
        var first: T?
        while first == nil, let next = await group.next() { first = next }
        group.cancelAll()
        while let rest = await group.next() {
            if let rest { late(rest) }
        }
        return first
    }
}

/// ``firstResult(of:late:)`` for racers that throw: the first error thrown before a non-`nil` result ends the race
/// and is rethrown. Errors thrown by the losers after the winner, cancelled as they are, are ignored.
public func firstResult<T: Sendable>(
    of tasks: (@Sendable () async throws -> T?)...,
    late: (T) -> Void = { _ in }
) async throws -> T? {
    try await withThrowingTaskGroup(of: T?.self) { group in
        for task in tasks { group.addTask(operation: task) }
        var first: T?
        while first == nil, let next = try await group.next() { first = next }
        group.cancelAll()
        while let rest = await group.nextResult() {
            if case .success(let value?) = rest { late(value) }
        }
        return first
    }
}
