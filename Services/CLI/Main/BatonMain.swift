import ArgumentParser
import CLI
import Glibc

/// The `baton` executable: the command tree lives in the `CLI` library, so tests can drive it without argv.
@main
struct BatonMain {
    static func main() async {
        // `baton replay` may feed a processor command that exits early: fail the write, do not die of SIGPIPE.
        signal(SIGPIPE, SIG_IGN)
        await Baton.main()
    }
}
