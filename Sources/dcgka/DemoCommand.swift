import ArgumentParser
import DCGKAEncoding
import DCGKACrypto
import Device
import Foundation
import NetworkSimulation

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
            let root = try Self.folder(keep)
            defer { if keep == nil { try? FileManager.default.removeItem(atPath: root) } }
            var world = try FileWorld(root: root, seed: seed, people: ["Alice", "Bob", "Carol", "Dave"])
            print("Four devices, one home each, in \(root).")
            print("They exchange contact codes (dcgka whoami / dcgka contact add).")
            try world.exchangeContacts()

            print("== Alice creates \"Newsroom\" with Bob and Carol, and writes")
            let group = try world.network["Alice"].createGroup(title: "Newsroom", with: [world.id("Bob"), world.id("Carol")])
            try world.say("Alice", "Hi both, no server can read this group.", in: group)
            try world.carry(from: "Alice", to: ["Bob", "Carol"])
            try world.say("Bob", "Nice. And when the internet is cut, we pass files.", in: group)
            try world.say("Carol", "Files can come late, twice, in any order.", in: group)
            try world.carry(from: "Bob", to: ["Alice", "Carol"])
            try world.carry(from: "Carol", to: ["Alice", "Bob"])

            print("== Carol adds Dave; Bob writes before he hears of it")
            try world.network["Carol"].add(world.id("Dave"), to: group)
            try world.say("Bob", "(Bob, sent while Dave's add is still on its way)", in: group)
            try world.carry(from: "Carol", to: ["Alice", "Bob", "Dave"])
            try world.carry(from: "Bob", to: ["Alice", "Carol", "Dave"])
            try world.say("Dave", "Hello! I read from my add on, not before.", in: group)
            try world.carry(from: "Dave", to: ["Alice", "Bob", "Carol"])
            try world.carry(from: "Alice", to: ["Bob", "Carol", "Dave"])

            print("== Alice removes Bob, and refreshes her keys")
            try world.network["Alice"].remove(world.id("Bob"), from: group)
            try world.network["Alice"].update(group)
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

/// The demo's people on a ``DeviceNetwork`` with a home each in one folder, on the system's clock
/// and generator, who talk only by files written into that folder: every step goes through the
/// same engine and files as `dcgka export` / `dcgka import`.
struct FileWorld {
    let root: String
    var rng: SeededRandom
    var network: DeviceNetwork
    var order: [String] { network.names }
    var filesCarried = 0
    var importsDone = 0
    var duplicateImports = 0
    /// Files written but not yet imported by someone, per recipient.
    var pending: [String: [String]] = [:]
    var imported: [String: [String]] = [:]

    init(root: String, seed: UInt64, people: [String]) throws {
        self.root = root
        self.rng = SeededRandom(seed: seed)
        network = try DeviceNetwork(people, .init(
            storage: .homes(in: root), clock: NetworkClock(reading: { Clock.now() }), randomness: .system, exchangesContacts: false))
    }

    func id(_ person: String) throws -> MemberID { try network.id(person) }

    mutating func exchangeContacts() throws { try network.exchangeContacts() }

    mutating func say(_ person: String, _ text: String, in group: GroupID) throws {
        try network[person].send(text: text, to: group)
    }

    /// The sender exports a file (encrypted to the group's participants); each recipient gets
    /// it later: files pile up and are imported in a shuffled order, some twice.
    mutating func carry(from sender: String, to recipients: [String]) throws {
        let bytes = try network.file(from: sender, protection: .participants())
        filesCarried += 1
        let path = (root as NSString).appendingPathComponent("\(sender.lowercased())-\(filesCarried).dcgka")
        guard FileManager.default.createFile(atPath: path, contents: Data(bytes)) else { throw CLIError("cannot write \(path)") }
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
        try network.carry(Array(data), to: person)
        imported[person, default: []].append(path)
        importsDone += 1
    }

    func printLogs(_ group: GroupID) throws {
        for person in order {
            let device = network[person]
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
            let device = network[person]
            let names = try device.names()
            let summary = try device.groups().first { $0.id == group }
            let members = summary?.members.map { names[$0] ?? "?" }.sorted() ?? []
            print("  \(person): \(members.joined(separator: ", "))\(summary?.isMember == false ? "  (removed)" : "")")
        }
    }
}
