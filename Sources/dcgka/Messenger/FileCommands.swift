import ArgumentParser
import DCGKAEncoding
import Device
import Foundation

struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write what others may lack to a file (a USB stick, a mail attachment): encrypted to the group's participants by default.")

    @OptionGroup var home: HomeOptions
    @Option(name: .long, help: "The file to write.") var output: String
    @Option(name: .long, help: "Only this group (a title or an ID prefix).") var group: String?
    @Option(name: .customLong("for"), parsing: .upToNextOption, help: "Only for these contacts: encrypted to them, with only what their last file did not show they have.")
    var recipients: [String] = []
    @Flag(help: "Encrypt with a passphrase instead (from DCGKA_FILE_PASSPHRASE or DCGKA_PASSPHRASE, else asked).") var passphrase = false
    @Flag(help: "Do not encrypt (anyone who finds the file sees who talks in which group, not what they say).") var plain = false
    @OptionGroup var json: JSONOption

    func run() throws {
        try runReporting {
            guard !(passphrase && plain) else { throw CLIError("--passphrase and --plain exclude each other") }
            var device = try home.open()
            let groups = try group.map { [try device.resolveGroup($0).id] }
            let peers = try recipients.map { try device.resolveContact($0).id }
            let protection: SyncFile.Protection
            if plain {
                protection = .plain
            } else if passphrase {
                protection = .passphrase(try readPassphrase("Passphrase for the file: ", forFile: true))
            } else if !peers.isEmpty {
                protection = .recipients(try device.contactBundles(peers))
            } else {
                let all = try groups ?? device.groups().filter { !$0.pendingInvitation }.map(\.id)
                protection = .recipients(try device.participantBundles(of: all))
            }
            let showProgress = !json.json
            let (bytes, count) = try device.exportFile(groups: groups, for: peers, protection: protection) { done, total in
                if showProgress { Output.progress("reading", done, total) }
            }
            let temporary = output + ".partial"
            guard FileManager.default.createFile(atPath: temporary, contents: Data(bytes)) else {
                throw CLIError("cannot write \(output)")
            }
            _ = try? FileManager.default.removeItem(atPath: output)
            try FileManager.default.moveItem(atPath: temporary, toPath: output)
            if json.json {
                try Output.json(["file": output, "envelopes": count, "bytes": bytes.count])
            } else {
                Output.line("Wrote \(count) envelopes (\(bytes.count) bytes) to \(output).")
            }
        }
    }
}

struct ImportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import", abstract: "Take in a file from `dcgka export` (any number of times, in any order).")

    @OptionGroup var home: HomeOptions
    @Argument(help: "The file.") var file: String
    @Flag(help: "The file is protected by a passphrase (from DCGKA_FILE_PASSPHRASE or DCGKA_PASSPHRASE, else asked).") var passphrase = false
    @OptionGroup var json: JSONOption

    func run() throws {
        try runReporting {
            var device = try home.open()
            guard let data = FileManager.default.contents(atPath: file) else { throw CLIError("cannot read \(file)") }
            let secret = passphrase ? try readPassphrase("Passphrase of the file: ", forFile: true) : nil
            let showProgress = !json.json
            let report = try device.importFile(Array(data), passphrase: secret) { done, total in
                if showProgress { Output.progress("importing", done, total) }
            }
            let groups = try device.groups()
            func title(_ id: GroupID) -> String { groups.first { $0.id == id }?.title ?? String(id.raw.hex.prefix(12)) }
            if json.json {
                try Output.json([
                    "new": report.new, "duplicate": report.duplicate, "rejected": report.rejected, "ignored": report.ignored,
                    "equivocations": report.equivocations, "messages": report.messages, "events": report.events,
                    "joined": report.joined.map { ["group": $0.raw.hex, "title": title($0)] },
                    "invitations": report.invitations.map { ["group": $0.raw.hex] },
                    "reasons": report.reasons,
                ])
            } else {
                Output.line("\(report.new) new, \(report.duplicate) already here, \(report.rejected) rejected; \(report.messages) new messages, \(report.events) events.")
                for id in report.joined { Output.line("You joined \"\(title(id))\".") }
                for id in report.invitations {
                    Output.line("Invitation from someone who is not a contact: `dcgka group accept \(String(id.raw.hex.prefix(12)))` to join.")
                }
                if report.equivocations > 0 { Output.line("Warning: \(report.equivocations) conflicting envelopes (equivocation) were found; the evidence is kept.") }
                for reason in report.reasons { Output.line("rejected: \(reason)") }
            }
        }
    }
}
