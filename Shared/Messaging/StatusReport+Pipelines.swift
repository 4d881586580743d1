public import Foundation

extension StatusReport {
    /// A run whose pipeline is in flight: its stages so far, each with its parts done of total.
    public struct PipelineRun: Codable, Sendable, Equatable {
        /// The run id, `job@logicalTime`.
        public var run: String
        /// The job.
        public var job: String
        /// When its first stage became ready (the algorithm's clock).
        public var since: Date
        /// When the latest news of it came.
        public var updated: Date
        /// Its stages that became ready, in order; the later ones are not known before their input is complete.
        public var stages: [StageProgress]

        /// Creates an entry.
        public init(run: String, job: String, since: Date, updated: Date, stages: [StageProgress]) {
            self.run = run
            self.job = job
            self.since = since
            self.updated = updated
            self.stages = stages
        }
    }

    /// One stage of a run in flight.
    public struct StageProgress: Codable, Sendable, Equatable {
        /// Its index in the run's pipeline, from 0.
        public var index: Int
        /// Its name.
        public var name: String
        /// How many tasks (parts) it has; absent when its `stage.ready` was lost.
        public var parts: Int?
        /// Tasks that succeeded.
        public var done: Int
        /// Failed attempts that will be retried.
        public var failed: Int
        /// Tasks dead-lettered (and not replayed since).
        public var dead: Int

        /// Creates an entry.
        public init(index: Int, name: String, parts: Int?, done: Int, failed: Int = 0, dead: Int = 0) {
            self.index = index
            self.name = name
            self.parts = parts
            self.done = done
            self.failed = failed
            self.dead = dead
        }
    }
}
