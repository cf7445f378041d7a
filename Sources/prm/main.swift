import Foundation
import PRMBench
import PRMCLI

// `bench` lives in PRMBench, which builds on PRMCLI, so it joins the product's commands here (listed last, as before).
exit(CLI.main(Array(CommandLine.arguments.dropFirst()), commands: CLI.commands + [BenchCommand.self]))
