import ArgumentParser

@main
struct DCGKACommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dcgka",
        abstract: "End-to-end encrypted group messaging without a trusted server (DCGKA).",
        subcommands: [DemoCommand.self, SimulateCommand.self, BenchCommand.self, MembershipGrowthCommand.self],
        defaultSubcommand: DemoCommand.self)
}
