/// The program behind `haps-pipe serve` and `haps-pipe ui` (both run it, so that neither
/// loads SwiftNIO into the other commands): `haps-pipe-serve ui ...` is the web interface,
/// anything else the model server.
@main
enum Entry {
    static func main() async {
        let arguments = Array(CommandLine.arguments.dropFirst())
        if arguments.first == "ui" { await UICommand.main(Array(arguments.dropFirst())) } else { await ServeCommand.main(arguments) }
    }
}
