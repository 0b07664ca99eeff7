import ArgumentParser
import DCGKAEncoding
import DCGKACrypto
import Device
import DeviceStorage
import Foundation

/// The README's main job: four people, each with their own device (a home with its own SQLite
/// database in a temporary folder), talk with no server at all by passing files, as they would
/// with USB sticks: imported late, out of order and twice.
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Alice, Bob and Carol chat by passing files; Dave joins, Bob leaves; files arrive out of order and twice.",
        discussion: "--switching: five people move from a company relay to a home relay, to direct links, to a file, while members are added and removed (NETWORK.md §14).")

    @Option(help: "Seed for the order in which files are carried.") var seed: UInt64 = 2021
    @Option(help: "Keep the homes in this folder (default: a temporary folder, deleted at the end).") var keep: String?
    @Flag(help: "The switching scenario on loopback: company relay, home relay, direct links, a file.") var switching = false

    func run() async throws {
        if switching {
            try await runReportingAsync {
                let root = try Self.folder(keep)
                defer { if keep == nil { try? FileManager.default.removeItem(atPath: root) } }
                var demo = try SwitchingDemo(root: root)
                try await demo.run()
            }
            return
        }
        try runFiles()
    }

    static func folder(_ keep: String?) throws -> String {
        let root = keep ?? FileManager.default.temporaryDirectory.appendingPathComponent("dcgka-demo-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        return root
    }

    func runFiles() throws {
        try runReporting {
            let root: String
            if let keep {
                root = keep
                try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
            } else {
                root = FileManager.default.temporaryDirectory.appendingPathComponent("dcgka-demo-\(UUID().uuidString)").path
                try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
            }
            defer { if keep == nil { try? FileManager.default.removeItem(atPath: root) } }
            var world = try FileWorld(root: root, seed: seed, people: ["Alice", "Bob", "Carol", "Dave"])
            print("Four devices, one home each, in \(root).")
            print("They exchange contact codes (dcgka whoami / dcgka contact add).")
            try world.exchangeContacts()

            print("== Alice creates \"Newsroom\" with Bob and Carol, and writes")
            let group = try world.device("Alice").createGroup(title: "Newsroom", with: [world.id("Bob"), world.id("Carol")])
            try world.say("Alice", "Hi both, no server can read this group.", in: group)
            try world.carry(from: "Alice", to: ["Bob", "Carol"])
            try world.say("Bob", "Nice. And when the internet is cut, we pass files.", in: group)
            try world.say("Carol", "Files can come late, twice, in any order.", in: group)
            try world.carry(from: "Bob", to: ["Alice", "Carol"])
            try world.carry(from: "Carol", to: ["Alice", "Bob"])

            print("== Carol adds Dave; Bob writes before he hears of it")
            try world.device("Carol").add(world.id("Dave"), to: group)
            try world.say("Bob", "(Bob, sent while Dave's add is still on its way)", in: group)
            try world.carry(from: "Carol", to: ["Alice", "Bob", "Dave"])
            try world.carry(from: "Bob", to: ["Alice", "Carol", "Dave"])
            try world.say("Dave", "Hello! I read from my add on, not before.", in: group)
            try world.carry(from: "Dave", to: ["Alice", "Bob", "Carol"])
            try world.carry(from: "Alice", to: ["Bob", "Carol", "Dave"])

            print("== Alice removes Bob, and refreshes her keys")
            try world.device("Alice").remove(world.id("Bob"), from: group)
            try world.device("Alice").update(group)
            try world.say("Alice", "Bob is gone; he cannot read this.", in: group)
            try world.carry(from: "Alice", to: ["Bob", "Carol", "Dave"])
            try world.say("Carol", "Confirmed, three of us now.", in: group)
            try world.carry(from: "Carol", to: ["Alice", "Bob", "Dave"])
            // A last round so that every acknowledgment reaches everyone.
            for person in ["Alice", "Carol", "Dave", "Bob"] {
                try world.carry(from: person, to: ["Alice", "Bob", "Carol", "Dave"].filter { $0 != person })
            }

            print("")
            try world.printLogs(group)
            try world.printMembers(group)
            print("\(world.filesCarried) files carried, \(world.importsDone) imports (\(world.duplicateImports) of them repeats), no server.")
        }
    }
}

/// Devices that talk only by files, in one folder: the demo's world. Every step goes through the
/// same engine and files as `dcgka export` / `dcgka import`.
struct FileWorld {
    let root: String
    var rng: SeededRandom
    var devices: [String: Device<SystemRandomNumberGenerator>] = [:]
    var order: [String]
    var filesCarried = 0
    var importsDone = 0
    var duplicateImports = 0
    /// Files written but not yet imported by someone, per recipient.
    var pending: [String: [String]] = [:]
    var imported: [String: [String]] = [:]

    init(root: String, seed: UInt64, people: [String]) throws {
        self.root = root
        self.rng = SeededRandom(seed: seed)
        self.order = people
        for person in people {
            let home = (root as NSString).appendingPathComponent(person.lowercased())
            try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            let store = try SQLiteDeviceStore(path: (home as NSString).appendingPathComponent("dcgka.sqlite"))
            var device = Device(store: store, clock: { Clock.now() }, random: SystemRandomNumberGenerator())
            _ = try device.initialize(name: person)
            devices[person] = device
        }
    }

    func id(_ person: String) throws -> MemberID { try devices[person]!.me().id }

    /// Mutable access to one person's device.
    func device(_ person: String) -> DeviceHandle { DeviceHandle(world: self, person: person) }

    mutating func exchangeContacts() throws {
        for person in order {
            let code = try devices[person]!.profile().contactCode
            for other in order where other != person {
                _ = try devices[other]!.addContact(code: code, name: person)
            }
        }
    }

    mutating func say(_ person: String, _ text: String, in group: GroupID) throws {
        try devices[person]!.send(text: text, to: group)
    }

    /// The sender exports a file (encrypted to the group's participants); each recipient gets
    /// it later: files pile up and are imported in a shuffled order, some twice.
    mutating func carry(from sender: String, to recipients: [String]) throws {
        var device = devices[sender]!
        let (bytes, _) = try device.exportFile(protection: .recipients(try device.participantBundles(of: device.groups().map(\.id))))
        devices[sender] = device
        filesCarried += 1
        let path = (root as NSString).appendingPathComponent("\(sender.lowercased())-\(filesCarried).dcgka")
        FileManager.default.createFile(atPath: path, contents: Data(bytes))
        for recipient in recipients { pending[recipient, default: []].append(path) }
        for recipient in recipients {
            var files = pending[recipient] ?? []
            // Deliver a random part of what is waiting, in random order.
            files.shuffle(using: &rng)
            let now = files.prefix(Int(rng.next() % UInt64(files.count)) + 1)
            pending[recipient] = Array(files.dropFirst(now.count))
            for file in now { try importFile(file, into: recipient) }
            // Sometimes an old file is imported again.
            if let old = imported[recipient]?.randomElement(using: &rng), rng.next() % 3 == 0 {
                try importFile(old, into: recipient)
                duplicateImports += 1
            }
        }
    }

    mutating func importFile(_ path: String, into person: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else { return }
        var device = devices[person]!
        _ = try device.importFile(Array(data))
        devices[person] = device
        imported[person, default: []].append(path)
        importsDone += 1
    }

    func printLogs(_ group: GroupID) throws {
        for person in order {
            let device = devices[person]!
            print("--- what \(person) sees")
            let renderer = HistoryRenderer(names: try device.names(), me: try device.me().id)
            for entry in try device.history(of: group) where entry.event != "updated" {
                print("  " + renderer.line(entry))
            }
        }
    }

    func printMembers(_ group: GroupID) throws {
        print("--- members, as each device sees them")
        for person in order {
            let device = devices[person]!
            let names = try device.names()
            let summary = try device.groups().first { $0.id == group }
            let members = summary?.members.map { names[$0] ?? "?" }.sorted() ?? []
            print("  \(person): \(members.joined(separator: ", "))\(summary?.isMember == false ? "  (removed)" : "")")
        }
    }
}

/// Calls on one person's device inside the world (the device is a value; this writes it back).
struct DeviceHandle {
    let world: FileWorld
    let person: String

    func createGroup(title: String, with members: [MemberID]) throws -> GroupID {
        var device = world.devices[person]!
        return try device.createGroup(title: title, with: members)
    }

    func add(_ member: MemberID, to group: GroupID) throws {
        var device = world.devices[person]!
        try device.add(member, to: group)
    }

    func remove(_ member: MemberID, from group: GroupID) throws {
        var device = world.devices[person]!
        try device.remove(member, from: group)
    }

    func update(_ group: GroupID) throws {
        var device = world.devices[person]!
        try device.update(group)
    }
}
