import DCGKAEncoding
import DCGKACrypto
import Device
import DeviceStorage
import Foundation
import Logging
import NetworkSimulation
import RelayClient
import RelayServer
import RelayStorage
import Sync
import Synchronization

/// `dcgka demo --switching`: the switching scenario of NETWORK.md §14 on loopback, for a
/// newcomer. Five people with their own devices (each a home with its own SQLite database), a
/// company relay and a home relay (real relay servers), then direct links (real TCP), then a
/// file: the same engines and links as `dcgka relay serve`, `dcgka sync`, `dcgka peer` and
/// `dcgka export`/`import`, in one process.
struct SwitchingDemo {
    var world: FileWorld
    let root: String
    let logger: Logger

    init(root: String) throws {
        self.root = root
        world = try FileWorld(root: root, seed: 1, people: ["Alice", "Bob", "Carol", "Dave", "Erin"])
        var logger = Logger(label: "dcgka.demo")
        logger.logLevel = .critical
        self.logger = logger
    }

    func device(_ person: String) -> NetworkDevice { world.network[person] }

    mutating func run() async throws {
        print("Five devices, one home each, in \(root). They exchange contact codes.")
        try world.exchangeContacts()
        let online = ["Alice", "Bob", "Carol", "Dave"]

        print("== A company relay and a home relay start (dcgka relay serve)")
        var company = try await DemoRelay.start(folder: (root as NSString).appendingPathComponent("company-relay"), logger: logger)
        var home = try await DemoRelay.start(folder: (root as NSString).appendingPathComponent("home-relay"), logger: logger)
        print("   company: \(company.address)\n   home:    \(home.address)")
        for person in online { try device(person).addRelay(company.address) }

        print("== (1) Alice creates \"Newsroom\" with Bob, Carol and Dave; everyone talks through the company relay")
        var alice = device("Alice")
        let group = try alice.createGroup(title: "Newsroom", with: [try world.id("Bob"), try world.id("Carol"), try world.id("Dave")])
        try await syncAll(online)
        for person in online { try say(person, "\(person): through the company relay", group) }
        try await syncAll(online)

        print("== (2) Alice suggests her home relay (dcgka group relays Newsroom --set ...)")
        try device("Bob").setRelayPolicy(.contacts)
        try device("Carol").setRelayPolicy(.always)
        try alice.setRelays([home.address], for: group)
        try await syncAll(online)
        print("   Bob (policy contacts) and Carol (policy always) use it at once; Dave (policy ask) accepts it:")
        try device("Dave").acceptRelay(home.address)
        try await syncAll(online)
        try say("Bob", "Bob: both relays carry the group now", group)
        try await syncAll(online)

        print("== (3) The company relay dies mid-conversation; meanwhile Alice adds Erin and Bob removes Dave")
        try say("Carol", "Carol: just before the company relay dies", group)
        try await sync("Carol")
        await company.stop()
        try alice.add(try world.id("Erin"), to: group)
        var bob = device("Bob")
        try bob.remove(try world.id("Dave"), from: group)
        try say("Alice", "Alice: the company relay is gone, the home relay carries on", group)
        for _ in 0..<3 { try await syncAll(online) }

        print("== (4) The home relay dies too. Direct links in a chain: Alice—Bob—Carol—Dave (dcgka peer)")
        await home.stop()
        let peers = DemoPeers(logger: logger)
        let bobPort = try await peers.listen(device("Bob"))
        let carolPort = try await peers.listen(device("Carol"), following: bobPort)
        _ = try await peers.listen(device("Dave"), following: carolPort)
        try say("Alice", "Alice: no relay left, this goes over the chain", group)
        try await peers.pass(device("Alice"), to: bobPort)
        try await waitFor("Carol", group) { $0.contains("Alice: no relay left, this goes over the chain") }
        var carol = device("Carol")
        try carol.update(group)
        try say("Carol", "Carol: fresh keys, and still talking", group)
        try await waitFor("Bob", group) { $0.contains("Carol: fresh keys, and still talking") }
        try await peers.pass(device("Alice"), to: bobPort)
        let (daveDevice, carolDevice) = (device("Dave"), device("Carol"))
        try await waitFor("Dave", group) { _ in
            (try? daveDevice.log(of: group, after: 0).wires.count) == (try? carolDevice.log(of: group, after: 0).wires.count)
        }

        print("== (5) Erin, offline all along, gets everything in a file from Dave (dcgka export / import)")
        var dave = device("Dave")
        let erinBundle = try dave.contacts().first { $0.name == "Erin" }.map { try KeyBundle(wireBytes: $0.bundle) }
        let (bytes, _) = try dave.exportFile(groups: [group], protection: .recipients(erinBundle.map { [$0] } ?? []))
        var erin = device("Erin")
        _ = try erin.importFile(bytes)

        print("")
        try world.printLogs(group)
        try world.printMembers(group)
        print("Dave, removed by Bob, still carried the group's envelopes to Erin; he reads nothing sent after his removal.")
        print("Two relays died and nothing was lost; nobody coordinated the switch.")
        await peers.stopAll()
    }

    func say(_ person: String, _ text: String, _ group: GroupID) throws {
        var device = device(person)
        try device.send(text: text, to: group)
    }

    /// `dcgka sync` for one person (a relay that is gone fails its pass; the others carry on).
    func sync(_ person: String) async throws {
        let device = device(person)
        let client = RelayClient(device: device, identity: try device.identityKey(), logger: logger)
        _ = await client.syncAll(try device.relays().compactMap { try? RelayAddress(parsing: $0.address) }, timeout: .seconds(10))
    }

    func syncAll(_ people: [String]) async throws {
        for _ in 0..<2 { for person in people { try await sync(person) } }
    }

    /// Waits (at most 30 s) until the person's messages satisfy `condition`.
    func waitFor(_ person: String, _ group: GroupID, _ condition: @escaping ([String]) -> Bool) async throws {
        for _ in 0..<300 {
            let texts = try device(person).history(of: group).filter { $0.kind == .message }.map(\.text)
            if condition(texts) { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw CLIError("\(person) did not receive what the demo expected in 30 s")
    }
}

/// A relay server in this process on 127.0.0.1 (what `dcgka relay serve` runs).
struct DemoRelay {
    let address: RelayAddress
    let task: Task<Void, any Error>

    static func start(folder: String, logger: Logger) async throws -> DemoRelay {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let identity = try RelayServer.identity(in: folder)
        let store = try SQLiteRelayStore(path: (folder as NSString).appendingPathComponent("relay.sqlite"))
        var configuration = RelayServerConfiguration()
        configuration.port = 0
        let server = RelayServer(identity: identity, store: store, configuration: configuration, logger: logger)
        let (addresses, continuation) = AsyncStream<RelayAddress>.makeStream()
        let task = Task { try await server.run { continuation.yield($0) } }
        for await address in addresses { return DemoRelay(address: address, task: task) }
        throw CLIError("the relay in \(folder) did not start")
    }

    mutating func stop() async {
        task.cancel()
        _ = try? await task.value
    }
}

/// Direct links in this process on 127.0.0.1 (what `dcgka peer listen` and `peer connect` run);
/// the demo stops them all at its end.
final class DemoPeers: Sendable {
    private let tasks = Mutex<[Task<Void, Never>]>([])
    let logger: Logger

    init(logger: Logger) { self.logger = logger }

    /// Listens (and keeps a link to `following`, if given); returns the port.
    func listen(_ device: NetworkDevice, following: Int? = nil) async throws -> Int {
        let client = PeerClient(device: device, identity: try device.identityKey(), logger: logger)
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        var started: [Task<Void, Never>] = [Task {
            try? await client.listen(host: "127.0.0.1", port: 0, bound: { continuation.yield($0) }, onLink: { _, _, _ in })
        }]
        if let following {
            started.append(Task { await client.followAll([("127.0.0.1", following)]) { _, _ in } })
        }
        tasks.withLock { $0 += started }
        for await port in ports { return port }
        throw CLIError("a direct link listener did not start")
    }

    func pass(_ device: NetworkDevice, to port: Int) async throws {
        let client = PeerClient(device: device, identity: try device.identityKey(), logger: logger)
        _ = try await client.sync(host: "127.0.0.1", port: port)
    }

    func stopAll() async {
        let running = tasks.withLock { tasks in defer { tasks = [] }; return tasks }
        for task in running { task.cancel() }
        for task in running { await task.value }
    }
}
