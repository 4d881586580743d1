public import Foundation
public import Logging
public import Messaging
public import ServiceKit
import Synchronization

/// The logger's ``StatusBoard``, shared between the event loop that updates it and the query socket that
/// reads it, and saved to `<data_dir>/logger/status.json` so that `baton status` keeps its history across
/// a logger restart.
///
/// Saving writes a new file and renames it over the old one, so a crash leaves the previous or the new
/// board, never a torn one. The board is saved at most once a second while events arrive, and on stop;
/// a `kill -9` loses at most the last second, which the next heartbeats and run events make good. Heartbeats
/// that change nothing but a service's last-seen time do not make it save (an idle deployment writes nothing).
public final class StatusKeeper: Sendable {
    /// The file the board is saved in.
    public let path: String
    private let state: Mutex<(board: StatusBoard, dirty: Bool)>
    private let logger: Logger
    /// Rung when the board changes; the saver sleeps on it, so an idle logger does not wake to save.
    public let changed = Doorbell()

    /// Loads the saved board, if there is a usable one; an unreadable file is set aside as `.corrupt`.
    public init(path: String, logger: Logger) {
        self.path = path
        self.logger = logger
        var board = StatusBoard()
        if let data = FileManager.default.contents(atPath: path) {
            do {
                board = try Timestamp.decoder().decode(StatusBoard.self, from: data)
            } catch {
                logger.warning(
                    "the saved status history is unreadable; starting a new one",
                    metadata: ["path": "\(path)", "error": "\(error)"]
                )
                try? FileManager.default.removeItem(atPath: path + ".corrupt")
                try? FileManager.default.moveItem(atPath: path, toPath: path + ".corrupt")
            }
        }
        state = Mutex((board, false))
    }

    /// Folds an event into the board.
    public func apply(_ event: StatusEvent, received: Date = Date()) {
        let significant = state.withLock { state -> Bool in
            guard state.board.apply(event, received: received) else { return false }
            state.dirty = true
            return true
        }
        if significant { changed.ring() }
    }

    /// Counts lost events from a publisher.
    public func recordLoss(publisher: String, lost: UInt64, received: Date = Date()) {
        state.withLock {
            $0.board.recordLoss(publisher: publisher, lost: lost, at: received)
            $0.dirty = true
        }
        changed.ring()
    }

    /// The current report, cut as `view` says.
    public func report(now: Date = Date(), view: StatusBoard.View = .init()) -> StatusReport {
        state.withLock { $0.board.report(now: now, view: view) }
    }

    /// Saves the board if it changed since the last save.
    public func saveIfChanged(now: Date = Date()) {
        let board: StatusBoard? = state.withLock {
            guard $0.dirty else { return nil }
            $0.board.forgetDeparted(now: now)
            $0.dirty = false
            return $0.board
        }
        guard let board else { return }
        do {
            let directory = (path as NSString).deletingLastPathComponent
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            try Timestamp.encoder().encode(board).write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            state.withLock { $0.dirty = true }
            logger.error("cannot save the status history", metadata: ["path": "\(path)", "error": "\(error)"])
        }
    }
}
