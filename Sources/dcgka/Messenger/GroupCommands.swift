import ArgumentParser
import DCGKAEncoding
import Device
import Foundation

struct GroupCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "group", abstract: "Create groups, see them, add and remove members.",
        subcommands: [Create.self, List.self, Members.self, Add.self, Remove.self, Update.self, Accept.self, Timer.self, GroupRelaysCommand.self, Grant.self])

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a group with some of your contacts.")
        @OptionGroup var home: HomeOptions
        @Argument(help: "The group's title.") var title: String
        @Option(name: .long, parsing: .upToNextOption, help: "Contacts to invite (names or ID prefixes).") var with: [String] = []
        @OptionGroup var output: JSONOption

        func run() throws {
            try runReporting {
                var device = try home.open()
                let members = try with.map { try device.resolveContact($0).id }
                let id = try device.createGroup(title: title, with: members)
                if output.json {
                    try Output.json(["group": Output.hex(id)])
                } else {
                    let how = (try? device.relays().isEmpty) == false ? "It reaches them with `dcgka sync` (or a running `dcgka chat`)" : "Share it with `dcgka export`"
                    Output.line("Created \"\(title)\" (\(String(Output.hex(id).prefix(12)))). \(how).")
                }
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List your groups and pending invitations.")
        @OptionGroup var home: HomeOptions
        @OptionGroup var output: JSONOption

        func run() throws {
            try runReporting {
                let device = try home.open()
                let groups = try device.groups()
                if output.json {
                    try Output.json(groups.map { group -> [String: Any] in
                        var object: [String: Any] = [
                            "group": Output.hex(group.id), "title": group.title, "members": group.members.count,
                            "member": group.isMember, "pending_invitation": group.pendingInvitation,
                        ]
                        if let by = group.invitedBy { object["invited_by"] = Output.hex(by) }
                        return object
                    })
                } else if groups.isEmpty {
                    Output.line("No groups yet. Create one with `dcgka group create TITLE --with NAME`.")
                } else {
                    let names = try device.names()
                    for group in groups {
                        let short = String(Output.hex(group.id).prefix(12))
                        if group.pendingInvitation {
                            let by = group.invitedBy.map { names[$0] ?? String(Output.hex($0).prefix(12)) } ?? "someone"
                            Output.line("\(short)  (invitation from \(by), not a contact: `dcgka group accept \(short)`)")
                        } else {
                            Output.line("\(short)  \(group.title)  \(group.members.count) members\(group.isMember ? "" : "  (you were removed)")")
                        }
                    }
                }
                if !output.json {
                    let names = try device.names()
                    for carried in try device.carriedGroups() {
                        let by = carried.grantedBy.map { names[$0] ?? String(Output.hex($0).prefix(12)) }.joined(separator: ", ")
                        Output.line("\(String(Output.hex(carried.group).prefix(12)))  (carried for its members, granted by \(by); \(carried.envelopes) envelopes you cannot read)")
                    }
                }
            }
        }
    }

    struct Grant: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Let a contact's device carry a group it is not in (it passes the envelopes on and can read none of them).")
        @OptionGroup var home: HomeOptions
        @Argument(help: "The group.") var group: String
        @Argument(help: "The contact whose device may carry it.") var contact: String
        @Option(help: "For how many days.") var days: UInt64 = 30

        func run() throws {
            try runReporting {
                var device = try home.open()
                let summary = try device.resolveGroup(group)
                let holder = try device.resolveContact(contact)
                let grant = try device.grant(summary.id, to: holder.id, days: days)
                Output.line("\(holder.name) may carry \"\(summary.title)\" until \(Output.time(grant.notAfter)); the grant reaches their device at your next link with it.")
            }
        }
    }

    struct Members: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Who is in a group, as this device sees it.")
        @OptionGroup var home: HomeOptions
        @Argument(help: "The group: its title or an ID prefix.") var group: String
        @OptionGroup var output: JSONOption

        func run() throws {
            try runReporting {
                let device = try home.open()
                let summary = try device.resolveGroup(group)
                let names = try device.names()
                let me = try device.me().id
                if output.json {
                    try Output.json(summary.members.map { id -> [String: Any] in
                        ["id": Output.hex(id), "name": names[id] ?? NSNull(), "me": id == me]
                    })
                } else {
                    for id in summary.members {
                        Output.line("\(names[id] ?? "(not a contact)")\(id == me ? " (you)" : "")  \(Output.hex(id))")
                    }
                }
            }
        }
    }

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add a contact to a group.")
        @OptionGroup var home: HomeOptions
        @Argument(help: "The group.") var group: String
        @Argument(help: "The contact.") var name: String

        func run() throws {
            try runReporting {
                var device = try home.open()
                let summary = try device.resolveGroup(group)
                let contact = try device.resolveContact(name)
                try device.add(contact.id, to: summary.id)
                Output.line("Added \(contact.name) to \"\(summary.title)\".")
            }
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a member from a group.")
        @OptionGroup var home: HomeOptions
        @Argument(help: "The group.") var group: String
        @Argument(help: "The member: a contact's name or an ID prefix.") var name: String

        func run() throws {
            try runReporting {
                var device = try home.open()
                let summary = try device.resolveGroup(group)
                let id: MemberID
                let label: String
                if let contact = try? device.resolveContact(name) {
                    id = contact.id
                    label = contact.name
                } else {
                    let matches = summary.members.filter { Output.hex($0).hasPrefix(name.lowercased()) }
                    guard name.count >= 4, matches.count == 1 else {
                        let names = try device.names()
                        throw DeviceError.unknownContact(name, candidates: summary.members.map { names[$0] ?? String(Output.hex($0).prefix(12)) })
                    }
                    id = matches[0]
                    label = String(Output.hex(id).prefix(12))
                }
                try device.remove(id, from: summary.id)
                Output.line("Removed \(label) from \"\(summary.title)\".")
            }
        }
    }

    struct Update: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Refresh your keys in a group (post-compromise security: do it after a device may have been seen).")
        @OptionGroup var home: HomeOptions
        @Argument(help: "The group.") var group: String

        func run() throws {
            try runReporting {
                var device = try home.open()
                let summary = try device.resolveGroup(group)
                try device.update(summary.id)
                Output.line("Refreshed your keys in \"\(summary.title)\".")
            }
        }
    }

    struct Timer: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Disappearing messages on this device: delete a group's history older than DURATION (e.g. 30m, 12h, 7d; off).")
        @OptionGroup var home: HomeOptions
        @Argument(help: "The group.") var group: String
        @Argument(help: "How long lines stay: a number with s, m, h, d or w, or off.") var duration: String

        func run() throws {
            try runReporting {
                let seconds = try Self.parse(duration)
                var device = try home.open()
                let summary = try device.resolveGroup(group)
                try device.setDisappearingTimer(seconds, for: summary.id)
                Output.line(seconds == 0 ? "Messages in \"\(summary.title)\" stay." : "Messages in \"\(summary.title)\" disappear from this device after \(duration).")
            }
        }

        static func parse(_ text: String) throws -> UInt64 {
            if text == "off" || text == "0" { return 0 }
            let units: [Character: UInt64] = ["s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800]
            guard let unit = text.last.flatMap({ units[$0] }), let value = UInt64(text.dropLast()), value > 0, value < 1 << 32 else {
                throw CLIError("\"\(text)\" is not a duration: use e.g. 30m, 12h, 7d, 2w or off")
            }
            return value * unit
        }
    }

    struct Accept: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Join a group you were invited to by someone who is not a contact.")
        @OptionGroup var home: HomeOptions
        @Argument(help: "The group's ID prefix (see `dcgka group list`).") var group: String

        func run() throws {
            try runReporting {
                var device = try home.open()
                let summary = try device.resolveGroup(group)
                try device.acceptInvitation(summary.id)
                let joined = try device.resolveGroup(group)
                Output.line("Joined \"\(joined.title)\".")
            }
        }
    }
}
