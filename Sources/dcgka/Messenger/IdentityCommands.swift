import ArgumentParser
import DCGKAEncoding
import Device
import DeviceStorage
import Foundation

struct InitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init", abstract: "Create this device's identity (refuses to overwrite one).")

    @OptionGroup var home: HomeOptions
    @Option(help: "Your name, as your contacts will see it until they name you themselves.") var name: String
    @Flag(help: "Lock the home with a passphrase (from DCGKA_PASSPHRASE, else asked): identity, keys, groups and history are encrypted at rest.")
    var passphrase = false
    @OptionGroup var output: JSONOption

    func run() throws {
        try runReporting {
            if FileManager.default.fileExists(atPath: home.databasePath) {
                // Refuse before asking for anything: a locked home has an identity (the lock is
                // made with it), and its name is sealed.
                do {
                    let store = try SQLiteDeviceStore(path: home.databasePath)
                    if let existing = try? Device(store: store, clock: { Clock.now() }, random: SystemRandomNumberGenerator()).me() {
                        throw DeviceError.alreadyInitialized(name: existing.name)
                    }
                } catch DeviceStoreError.passphraseRequired {
                    throw DeviceError.alreadyInitialized(name: "locked with a passphrase")
                }
            }
            let secret = passphrase ? try readPassphrase("New passphrase for this home: ") : nil
            var device = try home.open(create: true, lockWith: secret)
            let id = try device.initialize(name: name)
            let profile = try device.profile()
            if output.json {
                try Output.json(["id": Output.hex(id), "name": name, "contact": profile.contactCode, "home": home.path])
            } else {
                Output.line("Created \(name) in \(home.path).")
                Output.line("Your contact code (give it to the people you want to talk to):")
                Output.line(profile.contactCode)
            }
        }
    }
}

struct WhoamiCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "whoami", abstract: "Show this device's identity and its contact code.")

    @OptionGroup var home: HomeOptions
    @OptionGroup var output: JSONOption

    func run() throws {
        try runReporting {
            var device = try home.open()
            let profile = try device.profile()
            if output.json {
                try Output.json([
                    "id": Output.hex(profile.id), "name": profile.name, "contact": profile.contactCode,
                    "contact_valid_until": Output.time(profile.bundle.notAfter),
                ])
            } else {
                Output.line("\(profile.name)  \(Output.hex(profile.id))")
                Output.line("contact code (valid until \(Output.time(profile.bundle.notAfter))):")
                Output.line(profile.contactCode)
            }
        }
    }
}

struct WipeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wipe",
        abstract: "Destroy this home: identity, keys, groups and history (overwritten, then deleted).")

    @OptionGroup var home: HomeOptions
    @Flag(help: "Do not ask for confirmation.") var yes = false

    func run() throws {
        try runReporting {
            let path = home.path
            guard FileManager.default.fileExists(atPath: home.databasePath) else { throw CLIError("no dcgka home at \(path)") }
            if !yes {
                guard isatty(STDIN_FILENO) != 0 else { throw CLIError("refusing to wipe without --yes when not on a terminal") }
                FileHandle.standardError.write(Data("Destroy everything in \(path)? Type 'wipe' to confirm: ".utf8))
                guard readLine() == "wipe" else { throw CLIError("not wiped") }
            }
            // Overwrite the database files before unlinking them, so a copy of the disk taken
            // later finds zeros where keys were (best effort on flash storage).
            for suffix in ["", "-wal", "-shm", "-journal"] {
                let file = home.databasePath + suffix
                guard let handle = FileHandle(forUpdatingAtPath: file) else { continue }
                let size = (try? handle.seekToEnd()) ?? 0
                try? handle.seek(toOffset: 0)
                var left = size
                let zeros = Data(count: 1 << 16)
                while left > 0 {
                    let n = min(UInt64(zeros.count), left)
                    handle.write(zeros.prefix(Int(n)))
                    left -= n
                }
                try? handle.synchronize()
                try? handle.close()
                try? FileManager.default.removeItem(atPath: file)
            }
            try? FileManager.default.removeItem(atPath: path)
            Output.line("Wiped \(path).")
        }
    }
}

struct ContactCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "contact", abstract: "Your contacts: the people whose contact codes you added.",
        subcommands: [Add.self, List.self])

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add a contact from their contact code.")
        @OptionGroup var home: HomeOptions
        @Argument(help: "Their contact code (from `dcgka whoami`).") var code: String
        @Option(help: "The name you give them.") var name: String
        @OptionGroup var output: JSONOption

        func run() throws {
            try runReporting {
                var device = try home.open()
                let contact = try device.addContact(code: code, name: name)
                if output.json {
                    try Output.json(["name": contact.name, "id": Output.hex(contact.id)])
                } else {
                    Output.line("Added \(contact.name) (\(String(Output.hex(contact.id).prefix(16)))…).")
                }
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List your contacts.")
        @OptionGroup var home: HomeOptions
        @OptionGroup var output: JSONOption

        func run() throws {
            try runReporting {
                let device = try home.open()
                let contacts = try device.contacts()
                if output.json {
                    try Output.json(contacts.map { ["name": $0.name, "id": Output.hex($0.id)] })
                } else if contacts.isEmpty {
                    Output.line("No contacts yet. Add one with `dcgka contact add CODE --name NAME`.")
                } else {
                    for contact in contacts { Output.line("\(contact.name)  \(Output.hex(contact.id))") }
                }
            }
        }
    }
}
