import ArgumentParser
import CLI

/// The `baton` executable: the command tree lives in the `CLI` library, so tests can drive it without argv.
@main
struct BatonMain {
    static func main() async {
        await Baton.main()
    }
}
