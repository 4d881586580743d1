/// Why a run (or one attempt of it) failed. Its ``description`` is the text users see: in the ledger, in the
/// `failed` report to the scheduler and in `run.failed` events.
public enum RunFailure: Error, Sendable, Equatable, CustomStringConvertible {
    /// The request names a job this algorithm's configuration does not have.
    case unknownJob(String)
    /// The job's raw result directory could not be created.
    case rawDirectory(String)
    /// The built-in demo algorithm threw.
    case demo(String)
    /// The command ran and failed (exit status, signal or timeout), with the last lines of its standard error.
    case command(String)
    /// The command could not be started.
    case cannotStart(program: String, error: String)
    /// The result could not be sealed or recorded in the outbox.
    case handOff(String)
    /// The attempt ended without an outcome (its task group gave none).
    case interrupted

    public var description: String {
        switch self {
        case .unknownJob(let job): "unknown job \"\(job)\": not in this algorithm's configuration"
        case .rawDirectory(let error): "cannot create the raw result directory: \(error)"
        case .demo(let error): "the demo algorithm failed: \(error)"
        case .command(let reason): reason
        case .cannotStart(let program, let error): "cannot start \(program): \(error)"
        case .handOff(let error): "cannot keep the result: \(error)"
        case .interrupted: "interrupted"
        }
    }
}
