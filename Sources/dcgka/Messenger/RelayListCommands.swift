import ArgumentParser
import DCGKAEncoding
import Device
import Foundation
import Sync

/// `dcgka group relays GROUP [--set ADDRESS…]`: a group's relay list (NETWORK.md §14.5).
struct GroupRelaysCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "relays",
        abstract: "Show a group's suggested relays, or post a new list (an encrypted message only members read).")
    @OptionGroup var home: HomeOptions
    @Argument(help: "The group.") var group: String
    @Option(name: .long, parsing: .upToNextOption, help: "Post this list: relay addresses, dcgka-relay://HOST:PORT/RELAY-ID.") var set: [String] = []
    @Flag(help: "Post an empty list (members stop being offered relays by this group).") var clear = false
    @OptionGroup var output: JSONOption

    func run() throws {
        try runReporting {
            var device = try home.open()
            let summary = try device.resolveGroup(group)
            if !set.isEmpty || clear {
                guard set.isEmpty || !clear else { throw CLIError("use either --set ADDRESS… or --clear") }
                let addresses = try set.map { try RelayAddress(parsing: $0) }
                try device.setRelays(addresses, for: summary.id)
            }
            let list = try device.relayList(of: summary.id)
            let names = try device.names()
            func name(_ id: MemberID) -> String { names[id] ?? String(Output.hex(id).prefix(12)) }
            let mine = try device.relays()
            func inUse(_ text: String) -> Bool { mine.contains { $0.address == text && $0.carries(summary.id) } }
            if output.json {
                var object: [String: Any] = [
                    "group": Output.hex(summary.id),
                    "relays": list.relays.map { ["address": $0, "in_use": inUse($0)] as [String: Any] },
                    "suggestions": list.suggestions.map { suggestion -> [String: Any] in
                        ["by": Output.hex(suggestion.sender), "sent": Output.time(suggestion.sentAt), "relays": suggestion.relays,
                         "member": summary.members.contains(suggestion.sender)]
                    },
                ]
                if let by = list.setBy { object["set_by"] = Output.hex(by); object["set_at"] = Output.time(list.setAt) }
                try Output.json(object)
                return
            }
            if !set.isEmpty || clear { Output.line("Posted to \"\(summary.title)\"; members' devices pick it up by their relay policy.") }
            guard let by = list.setBy, !list.relays.isEmpty else {
                Output.line("\"\(summary.title)\" suggests no relays. Post some with `dcgka group relays \"\(summary.title)\" --set ADDRESS`.")
                return
            }
            Output.line("\"\(summary.title)\": relays suggested by \(name(by)) at \(Output.time(list.setAt)):")
            for text in list.relays {
                Output.line("  \(text)  \(inUse(text) ? "in use here" : "not used here (`dcgka relay accept \(text)`)")")
            }
        }
    }
}

/// `dcgka relay accept ADDRESS`: start using a relay that a group suggested.
struct RelayAcceptCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "accept", abstract: "Use a relay that one of your groups suggests, for the groups that suggest it.")
    @OptionGroup var home: HomeOptions
    @Argument(help: "The relay's address, as `dcgka relay list` shows it.") var address: String

    func run() throws {
        try runReporting {
            let relay = try RelayAddress(parsing: address)
            let device = try home.open()
            let groups = try device.acceptRelay(relay)
            guard !groups.isEmpty else {
                if try device.relays().contains(where: { $0.address == relay.description }) {
                    Output.line("\(relay) is already in use for the groups that suggest it.")
                    return
                }
                throw CLIError("no group of yours suggests \(relay); to use it for every group, `dcgka relay add \(relay)`")
            }
            let titles = try device.groups().filter { groups.contains($0.id) }.map { "\"\($0.title)\"" }
            Output.line("Using \(relay) for \(titles.joined(separator: ", ")). Run `dcgka sync` (or `dcgka chat`).")
        }
    }
}

/// `dcgka config`: device settings.
struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config", abstract: "Device settings.", subcommands: [RelayPolicyCommand.self])

    struct RelayPolicyCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "relay-policy",
            abstract: "Which relays your groups suggest this device uses by itself: ask (default), contacts, or always.",
            discussion: """
                A relay learns the address and times of whoever connects to it. ask: suggestions wait for \
                `dcgka relay accept ADDRESS`; contacts: suggestions from your contacts are used at once; always: \
                every member's suggestion is. A suggested relay carries only the group that suggested it.
                """)
        @OptionGroup var home: HomeOptions
        @Argument(help: "ask, contacts or always; omitted: show the current policy.") var policy: String?

        func run() throws {
            try runReporting {
                let device = try home.open()
                if let policy {
                    guard let value = RelayPolicy(rawValue: policy) else { throw CLIError("\"\(policy)\" is not a relay policy: use ask, contacts or always") }
                    try device.setRelayPolicy(value)
                }
                Output.line("relay-policy: \(try device.relayPolicy().rawValue)")
            }
        }
    }
}
