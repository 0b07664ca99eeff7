import ArgumentParser

@main
struct DCGKACommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dcgka",
        abstract: "End-to-end encrypted group messaging without a trusted server (DCGKA).",
        subcommands: [
            DemoCommand.self, InitCommand.self, WhoamiCommand.self, ContactCommand.self, GroupCommand.self, SendCommand.self,
            LogCommand.self, ChatCommand.self, ExportCommand.self, ImportCommand.self, WipeCommand.self,
            RelayCommand.self, SyncCommand.self, PeerCommand.self, ConfigCommand.self, UICommand.self,
            SimulateCommand.self, BenchCommand.self, MembershipGrowthCommand.self,
        ],
        defaultSubcommand: DemoCommand.self)
}
