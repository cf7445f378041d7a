import Foundation
import PRMCLI

exit(CLI.main(Array(CommandLine.arguments.dropFirst())))
