internal import Foundation
public import DCGKAEncoding
internal import DCGKACrypto
public import Device
public import Sync
public import RelayClient
internal import DeviceStorage
internal import Relay
internal import RelayStorage
internal import LinkIO
internal import Logging
internal import Synchronization

/// A device of a ``DeviceNetwork``. Its generator is shared by its copies, since a pass runs on
/// a copy while the caller may hold another.
public typealias NetworkDevice = Device<SharedRandom>

/// People with their devices, relays, memory links and carried files in one process: the one
/// network the switching simulation, `dcgka demo`, the device tests and the benchmarks run on,
/// so each does not grow its own. Everything goes through the real engines (the device, its sync
/// pass, the relay's per-link logic, sync files); only the wires, and time if asked, are
/// simulated.
///
/// People are named; `network["alice"]` is a person's device, to call on and mutate.
public struct DeviceNetwork: Sendable {
    public struct Options: Sendable {
        public enum Storage: Sendable {
            /// Private in-memory databases.
            case memory
            /// `FOLDER/NAME.sqlite`; nil: a fresh temporary folder that ``cleanUp()`` removes.
            case files(in: String?)
            /// A home per person as `dcgka --home` opens it, `ROOT/name/dcgka.sqlite`, so that a
            /// kept demo can be looked at with the CLI.
            case homes(in: String)
        }

        public enum Randomness: Sendable {
            /// Person number i draws from `seed·1000 + i`: a run repeats.
            case seeded(UInt64)
            case system
        }

        public var storage: Storage
        public var clock: NetworkClock
        public var randomness: Randomness
        /// Whether everyone has everyone as a contact from the start.
        public var exchangesContacts: Bool
        public var configuration: DeviceConfiguration

        public init(
            storage: Storage = .memory, clock: NetworkClock = NetworkClock(), randomness: Randomness = .seeded(1),
            exchangesContacts: Bool = true, configuration: DeviceConfiguration = .init()
        ) {
            self.storage = storage
            self.clock = clock
            self.randomness = randomness
            self.exchangesContacts = exchangesContacts
            self.configuration = configuration
        }
    }

    /// How a carried file is sealed.
    public enum FileProtection: Sendable {
        case plain
        /// To the participants of the exported groups (what `dcgka export` does), or only to
        /// those of them in `among`; plain when that leaves nobody.
        case participants(among: Set<MemberID>? = nil)
        case passphrase(String, SyncFile.ScryptCost = .default)
    }

    struct Relay: Sendable {
        var name: String
        var relay: SimulatedRelay
        var live = true
    }

    public let options: Options
    public var clock: NetworkClock { options.clock }
    public private(set) var names: [String] = []
    public private(set) var ids: [MemberID] = []
    public private(set) var devices: [NetworkDevice] = []
    /// Passes made (a device with one relay, or two devices), and those on a link with a budget.
    public private(set) var passes = 0
    public private(set) var cutPasses = 0
    var positions: [String: Int] = [:]
    var relays: [Relay] = []
    /// How many devices were cloned (each copy gets its own file and seed).
    var clones = 0
    /// A temporary folder this network made, removed by ``cleanUp()``.
    private(set) var temporaryFolder: String?
    let logger: Logger

    public init(_ names: [String], _ options: Options = .init()) throws {
        self.options = options
        var logger = Logger(label: "dcgka.network")
        logger.logLevel = .critical
        self.logger = logger
        switch options.storage {
        case .memory: break
        case .files(nil): temporaryFolder = try Self.makeTemporaryFolder()
        case .files(let folder?), .homes(let folder):
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        }
        for name in names { try addPerson(name, exchangingContacts: false) }
        if options.exchangesContacts { try exchangeContacts() }
    }

    static func makeTemporaryFolder() throws -> String {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("dcgka-network-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        return folder
    }

    /// Removes the temporary folder this network made, if any.
    public func cleanUp() {
        if let temporaryFolder { try? FileManager.default.removeItem(atPath: temporaryFolder) }
    }

    // MARK: People

    /// A new person with a fresh device; `exchangingContacts` (default: as the options say)
    /// makes them and everyone already here each other's contacts.
    @discardableResult
    public mutating func addPerson(_ name: String, exchangingContacts: Bool? = nil) throws -> Int {
        guard positions[name] == nil else { throw DeviceNetworkError.duplicate(name) }
        let index = devices.count
        let random: SharedRandom = switch options.randomness {
        case .seeded(let seed): SharedRandom(seed: seed &* 1_000 &+ UInt64(index))
        case .system: .system
        }
        let clock = options.clock
        var device = NetworkDevice(
            store: try SQLiteDeviceStore(path: try databasePath(for: name)), clock: { clock.now }, random: random,
            configuration: options.configuration)
        ids.append(try device.initialize(name: name))
        names.append(name)
        devices.append(device)
        positions[name] = index
        if exchangingContacts ?? options.exchangesContacts {
            for other in names.dropLast() {
                try introduce(name, to: other)
                try introduce(other, to: name)
            }
        }
        return index
    }

    func databasePath(for name: String) throws -> String? {
        switch options.storage {
        case .memory:
            return nil
        case .files(let folder):
            guard let folder = folder ?? temporaryFolder else { return nil }
            return (folder as NSString).appendingPathComponent("\(name).sqlite")
        case .homes(let root):
            let home = (root as NSString).appendingPathComponent(name.lowercased())
            try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            return (home as NSString).appendingPathComponent("dcgka.sqlite")
        }
    }

    /// The SQLite file of a person's device (nil in memory).
    public func databasePath(of name: String) throws -> String? { try databasePath(for: names[try person(name)]) }

    /// Everyone becomes everyone's contact (`dcgka whoami`, then `dcgka contact add`).
    public mutating func exchangeContacts() throws {
        for index in devices.indices {
            let code = try devices[index].profile().contactCode
            for other in devices.indices where other != index { _ = try devices[other].addContact(code: code, name: names[index]) }
        }
    }

    /// `other` adds `name`'s contact code.
    public mutating func introduce(_ name: String, to other: String) throws {
        let code = try self[try person(name)].profile().contactCode
        _ = try self[try person(other)].addContact(code: code, name: name)
    }

    /// A second device with a copy of `name`'s whole state, identity included (a stolen or
    /// restored copy of a phone): what the copy sends contradicts what the original sends at the
    /// same seqs, which is how the adversary of the switching scenario equivocates. Not a person
    /// of the network; needs SQLite files (the copy is a copy of the file).
    public mutating func clone(_ name: String) throws -> NetworkDevice {
        let index = try person(name)
        guard let path = try databasePath(for: names[index]) else { throw DeviceNetworkError.needsFiles("cloning \(name)") }
        clones += 1
        let copy = (path as NSString).deletingPathExtension + "-clone\(clones).sqlite"
        // Every write ends with a truncating WAL checkpoint: the main file is the whole state.
        try FileManager.default.copyItem(atPath: path, toPath: copy)
        let clock = options.clock
        let random: SharedRandom = switch options.randomness {
        case .seeded(let seed): SharedRandom(seed: seed &* 1_000 &+ 999 &- UInt64(clones))
        case .system: .system
        }
        return NetworkDevice(store: try SQLiteDeviceStore(path: copy), clock: { clock.now }, random: random, configuration: options.configuration)
    }

    /// The position of a named person.
    public func person(_ name: String) throws -> Int {
        guard let index = positions[name] else { throw DeviceNetworkError.unknownPerson(name) }
        return index
    }

    public func id(_ name: String) throws -> MemberID { ids[try person(name)] }

    public subscript(_ index: Int) -> NetworkDevice {
        get { devices[index] }
        set { devices[index] = newValue }
    }

    /// A named person's device; naming nobody is a mistake in the caller.
    public subscript(_ name: String) -> NetworkDevice {
        get { devices[position(name)] }
        set { devices[position(name)] = newValue }
    }

    private func position(_ name: String) -> Int {
        guard let index = positions[name] else { preconditionFailure("nobody is named \(name) in this network") }
        return index
    }

    // MARK: Relays

    /// A relay (its own link logic and SQLite store, no sockets), live until killed. `keySeed`
    /// fixes its identity; by default it follows from the network's seed and the name.
    @discardableResult
    public mutating func addRelay(_ name: String, keySeed: UInt64? = nil) throws -> RelayAddress {
        guard !relays.contains(where: { $0.name == name }) else { throw DeviceNetworkError.duplicate(name) }
        let identity: IdentityKey
        switch (keySeed, options.randomness) {
        case (let seed?, _):
            var random = SeededRandom(seed: seed)
            identity = IdentityKey.generate(using: &random)
        case (nil, .seeded(let seed)):
            var random = SeededRandom(seed: seed ^ Self.fnv(name))
            identity = IdentityKey.generate(using: &random)
        case (nil, .system):
            var random = SystemRandomNumberGenerator()
            identity = IdentityKey.generate(using: &random)
        }
        let folder: String
        switch options.storage {
        case .files(let given?), .homes(let given): folder = given
        case .files(nil), .memory:
            if temporaryFolder == nil { temporaryFolder = try Self.makeTemporaryFolder() }
            folder = temporaryFolder ?? ""
        }
        let store = try SQLiteRelayStore(path: (folder as NSString).appendingPathComponent("relay-\(name).sqlite"))
        let relay = SimulatedRelay(identity: identity, store: store, clock: options.clock)
        relays.append(Relay(name: name, relay: relay))
        return relay.address
    }

    public func relayAddress(_ name: String) throws -> RelayAddress { relays[try relayIndex(name)].relay.address }

    /// The relay stops answering; what it stored stays for ``reviveRelay(_:)``.
    public mutating func killRelay(_ name: String) throws { relays[try relayIndex(name)].live = false }

    public mutating func reviveRelay(_ name: String) throws { relays[try relayIndex(name)].live = true }

    public func isLive(relay name: String) throws -> Bool { relays[try relayIndex(name)].live }

    func relayIndex(_ name: String) throws -> Int {
        guard let index = relays.firstIndex(where: { $0.name == name }) else { throw DeviceNetworkError.unknownRelay(name) }
        return index
    }

    static func fnv(_ text: String) -> UInt64 {
        text.utf8.reduce(0xcbf2_9ce4_8422_2325) { ($0 ^ UInt64($1)) &* 0x100_0000_01b3 }
    }

    // MARK: Links

    /// One pass between two devices over a memory link (the pass `dcgka peer connect` makes),
    /// cut in both directions after `budget` messages if one is given. A side's report is nil
    /// when its pass failed (the link was cut).
    @discardableResult
    public mutating func pass(_ a: String, _ b: String, budget: Int? = nil) async throws -> (SyncReport?, SyncReport?) {
        try await pass(try person(a), try person(b), budget: budget)
    }

    @discardableResult
    mutating func pass(_ a: Int, _ b: Int, budget: Int? = nil) async throws -> (SyncReport?, SyncReport?) {
        let (sideA, sideB) = MemoryChannel.pair(ids[a], ids[b], budget: budget)
        let clientA = PeerClient(device: devices[a], identity: try devices[a].identityKey(), logger: logger)
        let clientB = PeerClient(device: devices[b], identity: try devices[b].identityKey(), logger: logger)
        let (handA, handB) = (HandOver(sideA), HandOver(sideB))
        async let left: SyncReport? = { var channel = handA.value; defer { channel.link.close() }; return try? await clientA.pass(over: &channel) }()
        async let right: SyncReport? = { var channel = handB.value; defer { channel.link.close() }; return try? await clientB.pass(over: &channel) }()
        let reports = await (left, right)
        passes += 1
        if budget != nil { cutPasses += 1 }
        return reports
    }

    /// A device syncs with every live relay it uses (`dcgka sync`); one report per relay reached.
    @discardableResult
    public mutating func sync(_ name: String) async throws -> [SyncReport] { try await sync(try person(name)) }

    @discardableResult
    mutating func sync(_ person: Int) async throws -> [SyncReport] {
        var reports: [SyncReport] = []
        for slot in relays where slot.live {
            let relay = slot.relay
            guard try devices[person].relays().contains(where: { $0.relay == relay.identity.id }) else { continue }
            let (deviceSide, relaySide) = MemoryChannel.pair(ids[person], relay.identity.id, budget: nil)
            let client = PeerClient(device: devices[person], identity: try devices[person].identityKey(), logger: logger)
            let (relayHand, deviceHand) = (HandOver(relaySide), HandOver(deviceSide))
            async let served: Void = { var channel = relayHand.value; await relay.serve(&channel) }()
            async let passed: SyncReport? = { var channel = deviceHand.value; defer { channel.link.close() }; return try? await client.pass(over: &channel) }()
            let (_, report) = await (served, passed)
            if let report { reports.append(report) }
            passes += 1
        }
        return reports
    }

    // MARK: Files

    /// A sync file exported by `name` (`dcgka export`): of `groups` (default all), for `peers`
    /// (default: everything, not only what they may lack). The caller carries it, late, twice or
    /// never, with ``carry(_:to:passphrase:)``.
    public mutating func file(
        from name: String, groups: [GroupID]? = nil, for peers: [MemberID] = [], protection: FileProtection = .plain
    ) throws -> [UInt8] {
        try file(from: try person(name), groups: groups, for: peers, protection: protection)
    }

    mutating func file(from person: Int, groups: [GroupID]? = nil, for peers: [MemberID] = [], protection: FileProtection) throws -> [UInt8] {
        let sealing: SyncFile.Protection
        switch protection {
        case .plain:
            sealing = .plain
        case .participants(let among):
            let bundles = try devices[person].participantBundles(of: groups ?? devices[person].groups().map(\.id))
                .filter { among?.contains($0.identity) ?? true }
            sealing = bundles.isEmpty ? .plain : .recipients(bundles)
        case .passphrase(let passphrase, let cost):
            sealing = .passphrase(passphrase, cost)
        }
        return try devices[person].exportFile(groups: groups, for: peers, protection: sealing).bytes
    }

    /// `name` imports a file (`dcgka import`).
    @discardableResult
    public mutating func carry(_ bytes: [UInt8], to name: String, passphrase: String? = nil) throws -> ReceiveReport {
        try self[try person(name)].importFile(bytes, passphrase: passphrase)
    }

    /// Everyone named exports a plain file and everyone else imports it, until nothing new moves.
    public mutating func settle(_ people: [String]) throws {
        for _ in 0..<6 {
            var moved = 0
            let files = try people.map { try file(from: $0) }
            for (index, bytes) in files.enumerated() {
                for name in people where name != people[index] { moved += try carry(bytes, to: name).new }
            }
            if moved == 0 { return }
        }
    }

    // MARK: Read-outs

    /// The texts of the messages `name` reads in the group, in its order.
    public func texts(_ name: String, _ group: GroupID) throws -> [String] {
        try self[try person(name)].history(of: group).filter { $0.kind == .message }.map(\.text)
    }

    /// The members as `name` sees them (empty when it does not know the group).
    public func members(_ name: String, _ group: GroupID) throws -> [MemberID] {
        try self[try person(name)].groups().first { $0.id == group }?.members ?? []
    }

    /// `name`'s view of the group; nil unless it counts itself a member.
    public func view(_ name: String, _ group: GroupID) throws -> Set<MemberID>? { try view(try person(name), group) }

    func view(_ person: Int, _ group: GroupID) throws -> Set<MemberID>? {
        guard let summary = try devices[person].groups().first(where: { $0.id == group }), summary.isMember else { return nil }
        return Set(summary.members)
    }

    public func history(_ name: String, _ group: GroupID) throws -> [HistoryRecord] { try self[try person(name)].history(of: group) }

    /// Envelopes each device holds in the group's log, in the order of the people.
    public func logSizes(_ group: GroupID) throws -> [Int] {
        try devices.map { try $0.log(of: group, after: 0, limit: Int.max).wires.count }
    }
}

public enum DeviceNetworkError: Error, CustomStringConvertible {
    case unknownPerson(String)
    case unknownRelay(String)
    case duplicate(String)
    case needsFiles(String)

    public var description: String {
        switch self {
        case .needsFiles(let what): "\(what) needs a network on SQLite files"
        case .unknownPerson(let name): "nobody is named \(name) in this network"
        case .unknownRelay(let name): "no relay is named \(name) in this network"
        case .duplicate(let name): "\(name) is already in this network"
        }
    }
}

/// A random generator that copies of a device share (a device is a value; its copies in
/// concurrent passes draw from one sequence).
public final class SharedRandom: RandomNumberGenerator, Sendable {
    private let state: Mutex<SeededRandom>
    /// Draws from the system's generator instead.
    private let isSystem: Bool

    public init(seed: UInt64) {
        state = Mutex(SeededRandom(seed: seed))
        isSystem = false
    }

    private init(system: Void) {
        state = Mutex(SeededRandom(seed: 0))
        isSystem = true
    }

    public static var system: SharedRandom { SharedRandom(system: ()) }

    public func next() -> UInt64 {
        if isSystem {
            var system = SystemRandomNumberGenerator()
            return system.next()
        }
        return state.withLock { $0.next() }
    }
}

/// The network's clock, in seconds: a fixed start that only ``advance(_:)`` moves, or a reading
/// (the system's clock) plus what was advanced.
public final class NetworkClock: Sendable {
    private let reading: @Sendable () -> UInt64
    private let advanced = Mutex<UInt64>(0)

    public init(start: UInt64 = 1_800_000_000) { reading = { start } }
    public init(reading: @escaping @Sendable () -> UInt64) { self.reading = reading }

    public static var system: NetworkClock { NetworkClock { UInt64(Date().timeIntervalSince1970) } }

    public var now: UInt64 { reading() + advanced.withLock { $0 } }
    public func advance(_ seconds: UInt64 = 1) { advanced.withLock { $0 += seconds } }
}

/// A relay in the network: the relay's own link logic and store, no sockets.
struct SimulatedRelay: RelayEnvironment {
    let identity: IdentityKey
    let store: any RelayStore
    var limits = RelayLimits()
    let clock: NetworkClock

    func commit(_ batch: StoreBatch) async throws -> [StoreOutcome] {
        try await store.store([batch], now: clock.now, quotas: StoreQuotas(limits)).first ?? []
    }

    func takeEnvelopeTokens(_ identity: MemberID, _ count: Int, now: Double) async -> Bool { true }

    var address: RelayAddress { RelayAddress(host: "relay-\(identity.id.raw.hex.prefix(8)).sim", port: 7447, relay: identity.id) }

    /// Serves one link until the device ends it (or the link is cut).
    func serve(_ channel: inout MemoryChannel) async {
        var connection = RelayConnection(relay: identity.id, peer: channel.link.peer, environment: self, now: Double(clock.now))
        defer { channel.link.close() }
        do {
            for output in connection.start() { if case .send(let message) = output { try await channel.link.send([message]) } }
            while let messages = try await channel.receive() {
                for message in messages {
                    for output in try await connection.receive(message, now: Double(clock.now)) {
                        switch output {
                        case .send(let message): try await channel.link.send([message])
                        case .close(let refusal):
                            try await channel.link.send([.error(refusal.code, refusal.description)])
                            return
                        case .closed: return
                        case .subscribe, .published, .named: break
                        }
                    }
                }
            }
        } catch {
            // The link was cut: what was stored stays stored.
        }
    }
}

/// Hands one end of a memory link to the task that alone uses it from then on.
struct HandOver<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
