import Foundation
import Glibc

/// Unbuffered output: every line reaches a pipe at once (print buffers when stdout is not a terminal).
///
/// A reader that goes away (`baton results --json | head -3`) ends the command quietly, with the status a shell
/// gives a process killed by SIGPIPE (141), as `yes | head` does. SIGPIPE is ignored in `baton` (a processor
/// command fed by `baton replay` may exit early), so a write returns EPIPE, on which `FileHandle.write` trapped.
enum Console {
    /// Writes one line to standard output.
    static func line(_ text: String) {
        write(text + "\n", to: STDOUT_FILENO)
    }

    /// Writes text to standard output as it is (no newline added).
    static func write(_ text: String) {
        write(text, to: STDOUT_FILENO)
    }

    /// Writes one line to standard error.
    static func error(_ text: String) {
        write(text + "\n", to: STDERR_FILENO)
    }

    /// Writes all of `text` to `fd`, through interruptions and partial writes. Any error but EPIPE is dropped:
    /// there is nowhere left to say it.
    private static func write(_ text: String, to fd: Int32) {
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if written > 0 {
                bytes = bytes.dropFirst(written)
            } else if written < 0, errno == EINTR {
                continue
            } else if written < 0, errno == EPIPE {
                exit(128 + SIGPIPE)
            } else {
                return
            }
        }
    }
}
