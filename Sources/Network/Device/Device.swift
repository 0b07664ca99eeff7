public import DCGKAEncoding
public import DCGKACrypto
public import CausalBroadcast
@_spi(Simulation) public import DCGKAGroup
internal import KeyAgreement
public import Sync

/// Settings of a device engine. The defaults are what the CLI uses.
public struct DeviceConfiguration: Sendable {
    /// How long a freshly made bundle is valid (90 days).
    public var bundleLifetime: UInt64 = 90 * 86_400
    /// A new bundle is made once mine has less than this left (30 days, so a contact code always
    /// carries a bundle valid for at least 30 days).
    public var bundleRefreshMargin: UInt64 = ContactCode.minimumValidity
    /// Envelopes processed per write transaction when importing (NETWORK.md §10.2). 2,048: the
    /// group state is decoded, encoded and written once per batch, so smaller batches cost more
    /// (BENCHMARKS.md); a batch holds the home's write lock for about 0.4 s on the benchmark
    /// machine, which a `send` in another process waits out.
    public var importBatch: Int = 2048
    /// How long application payloads are kept to serve others (NETWORK.md §10.4, 30 days);
    /// headers and signatures are kept for ever, so every chain continues.
    public var payloadRetention: UInt64 = 30 * 86_400
    public var group = GroupConfiguration()

    public init() {}
}

/// A person's device (NETWORK.md §10): identity, prekeys, contacts, groups, the envelope log, the
/// outbox and the history, kept in a ``DeviceStore``.
///
/// Every call that changes something is one write transaction of the store: it reads the state,
/// runs the sans-IO protocol core on it, and commits the new state with every envelope it made
/// (log and outbox) and every line the user will see (history), or nothing. An envelope of mine
/// exists only once that transaction committed (persist before send); two processes on one home
/// serialize on the transaction, so they never sign two envelopes at one seq.
///
/// Time and randomness are injected: the CLI passes the system clock and generator, tests a
/// fixed clock and a seeded generator.
public struct Device<Random: RandomNumberGenerator & Sendable>: Sendable {
    public let store: any DeviceStore
    public var clock: @Sendable () -> UInt64
    public var random: Random
    public var configuration: DeviceConfiguration

    public init(store: any DeviceStore, clock: @escaping @Sendable () -> UInt64, random: Random, configuration: DeviceConfiguration = .init()) {
        self.store = store
        self.clock = clock
        self.random = random
        self.configuration = configuration
    }
}

/// My keys as one write transaction sees them.
struct Keys {
    var name: String
    var identity: IdentityKey
    var prekeys: PrekeyStore
    var bundle: KeyBundle
    var createdAt: UInt64
    var changed = false
    /// A new bundle made in this transaction: every group I am in adopts it.
    var rotated = false

    var me: MemberID { identity.id }

    init(_ profile: ProfileRecord) throws(DeviceError) {
        do {
            name = profile.name
            identity = try IdentityKey(wireBytes: profile.identity)
            prekeys = try PrekeyStore(wireBytes: profile.prekeys)
            bundle = try KeyBundle(wireBytes: profile.bundle)
            createdAt = profile.createdAt
        } catch {
            throw .corruptState("identity: \(error)")
        }
    }

    var record: ProfileRecord {
        ProfileRecord(name: name, identity: identity.wireBytes, prekeys: prekeys.wireBytes, bundle: bundle.wireBytes, createdAt: createdAt)
    }
}

// MARK: - Identity and contacts

extension Device {
    /// A person's name: 1–64 characters, no control characters.
    static func checkName(_ name: String) throws(DeviceError) {
        guard !name.isEmpty, name.count <= 64, !name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw .invalidName(name)
        }
    }

    /// Creates this home's identity, prekeys and first bundle. Refuses to overwrite one.
    public mutating func initialize(name: String) throws -> MemberID {
        try Self.checkName(name)
        let now = clock()
        let lifetime = configuration.bundleLifetime
        var random = self.random
        defer { self.random = random }
        return try store.write { tx in
            if let existing = try tx.profile() { throw DeviceError.alreadyInitialized(name: existing.name) }
            let identity = IdentityKey.generate(using: &random)
            var prekeys = PrekeyStore()
            let bundle = prekeys.generate(identity: identity, notAfter: now + lifetime, using: &random)
            try tx.saveProfile(ProfileRecord(
                name: name, identity: identity.wireBytes, prekeys: prekeys.wireBytes, bundle: bundle.wireBytes, createdAt: now))
            return identity.id
        }
    }

    public struct Profile: Sendable, Equatable {
        public var id: MemberID
        public var name: String
        public var bundle: KeyBundle
        public var contactCode: String { ContactCode.encode(bundle) }
    }

    /// Who I am, with a contact code whose bundle is valid for at least 30 days (a new bundle is
    /// made and handed to my groups when mine is older).
    public mutating func profile() throws -> Profile {
        try write { tx, keys, _ in
            Profile(id: keys.me, name: keys.name, bundle: keys.bundle)
        }
    }

    /// Adds (or refreshes) a contact from its code. The name must be unused by another contact.
    public mutating func addContact(code: String, name: String) throws -> ContactRecord {
        try Self.checkName(name)
        let now = clock()
        let bundle: KeyBundle
        do { bundle = try ContactCode.decode(code, now: now) } catch { throw DeviceError.contactCode(error) }
        return try write { tx, keys, _ in
            guard bundle.identity != keys.me else { throw DeviceError.contactIsMe }
            let contacts = try tx.contacts()
            if contacts.contains(where: { $0.name == name && $0.id != bundle.identity }) { throw DeviceError.duplicateContactName(name) }
            var record = ContactRecord(id: bundle.identity, name: name, bundle: bundle.wireBytes, addedAt: now)
            if let known = contacts.first(where: { $0.id == bundle.identity }) {
                record.addedAt = known.addedAt
                if let old = try? KeyBundle(wireBytes: known.bundle), old.notAfter > bundle.notAfter { record.bundle = known.bundle }
            }
            try tx.saveContact(record)
            try Self.offer(bundle, tx: tx, now: now)
            return record
        }
    }

    /// Groups we share take a contact's newer bundle too (§2.3's newest-valid rule).
    static func offer(_ bundle: KeyBundle, tx: any DeviceStoreTransaction, now: UInt64) throws {
        for var groupRecord in try tx.groups() where groupRecord.status == .joined {
            guard var group = try Self.decodeGroup(groupRecord),
                  group.keyAgreement.history.isKnownParticipant(bundle.identity) else { continue }
            if (try? group.offerBundle(bundle, now: now)) == true {
                groupRecord.state = group.wireBytes
                try tx.saveGroup(groupRecord)
            }
        }
    }

    /// Bundles from a relay's directory (NETWORK.md §13.3), never trusted: each must verify, be a
    /// contact's and be newer than the one I hold; then it replaces it. Returns how many did.
    @discardableResult
    public mutating func refreshContacts(_ encoded: [[UInt8]]) throws -> Int {
        let now = clock()
        let bundles = encoded.compactMap { bytes -> KeyBundle? in
            guard let bundle = try? KeyBundle(wireBytes: bytes), (try? bundle.verify(now: now)) != nil else { return nil }
            return bundle
        }
        guard !bundles.isEmpty else { return 0 }
        return try write { tx, _, _ in
            var refreshed = 0
            let contacts = try tx.contacts()
            for bundle in bundles {
                guard var contact = contacts.first(where: { $0.id == bundle.identity }) else { continue }
                if let old = try? KeyBundle(wireBytes: contact.bundle), old.notAfter >= bundle.notAfter { continue }
                contact.bundle = bundle.wireBytes
                try tx.saveContact(contact)
                try Self.offer(bundle, tx: tx, now: now)
                refreshed += 1
            }
            return refreshed
        }
    }

    public func contacts() throws -> [ContactRecord] {
        try store.read { tx in try tx.contacts() }.sorted { $0.name < $1.name }
    }

    /// The contact a person names: an exact name, or a unique prefix of an ID in hex.
    public func resolveContact(_ name: String) throws -> ContactRecord {
        let contacts = try self.contacts()
        if let exact = contacts.first(where: { $0.name == name }) { return exact }
        let lower = name.lowercased()
        let byID = lower.count >= 4 ? contacts.filter { $0.id.raw.hex.hasPrefix(lower) } : []
        if byID.count == 1 { return byID[0] }
        if byID.count > 1 { throw DeviceError.ambiguousContact(name, candidates: byID.map(\.name)) }
        throw DeviceError.unknownContact(name, candidates: contacts.map(\.name))
    }
}

// MARK: - Groups: my operations

extension Device {
    public struct GroupSummary: Sendable, Equatable {
        public var id: GroupID
        public var title: String
        public var members: [MemberID]
        public var isMember: Bool
        public var pendingInvitation: Bool
        public var invitedBy: MemberID?
        public var relays: [String]
        public var disappearAfter: UInt64
    }

    public func groups() throws -> [GroupSummary] {
        try store.read { tx in
            try tx.groups().filter { $0.status != .carried && $0.status != .declined }.map { record in
                let group = try Self.decodeGroup(record)
                return GroupSummary(
                    id: record.id, title: record.title, members: group.map { $0.members.sorted() } ?? [],
                    isMember: group?.isMember ?? false, pendingInvitation: record.status == .invited,
                    invitedBy: record.invitedBy, relays: record.relays, disappearAfter: record.disappearAfter)
            }
        }.sorted { ($0.title, $0.id) < ($1.title, $1.id) }
    }

    /// The group a person names: its exact title, or a unique prefix of its ID in hex.
    public func resolveGroup(_ name: String) throws -> GroupSummary {
        let groups = try self.groups()
        let titled = groups.filter { $0.title == name }
        if titled.count == 1 { return titled[0] }
        let lower = name.lowercased()
        let byID = lower.count >= 4 ? groups.filter { $0.id.raw.hex.hasPrefix(lower) } : []
        if byID.count == 1 { return byID[0] }
        let candidates = (titled.count > 1 ? titled : byID).map { "\($0.title) (\(String($0.id.raw.hex.prefix(12))))" }
        if titled.count > 1 || byID.count > 1 { throw DeviceError.ambiguousGroup(name, candidates: candidates) }
        throw DeviceError.unknownGroup(name, candidates: groups.map { "\($0.title) (\(String($0.id.raw.hex.prefix(12))))" })
    }

    /// Creates a group with these contacts; its title follows as the first message.
    public mutating func createGroup(title: String, with members: [MemberID]) throws -> GroupID {
        let now = clock()
        let groupConfiguration = configuration.group
        return try write { tx, keys, random in
            var bundles: [KeyBundle] = []
            for id in Set(members).subtracting([keys.me]).sorted() {
                bundles.append(try Self.contactBundle(id, tx: tx, now: now))
            }
            let created: (Group, Envelope)
            do {
                created = try Group.create(
                    identity: keys.identity, ownBundle: keys.bundle, members: bundles, prekeys: keys.prekeys, now: now,
                    configuration: groupConfiguration, using: &random)
            } catch let error as GroupError { throw DeviceError.group(error) }
            var (group, envelope) = created
            var record = GroupRecord(id: group.groupID, title: title, state: nil, status: .joined, createdAt: now)
            var effects = Effects(group: group.groupID, now: now)
            effects.sent(envelope)
            effects.event("created", sender: keys.me, subjects: bundles.map(\.identity))
            try Self.sendContent(.title(title), in: &group, record: &record, keys: keys, effects: &effects, now: now, rng: &random)
            record.state = group.wireBytes
            try tx.saveGroup(record)
            try effects.commit(tx)
            return group.groupID
        }
    }

    /// Adds a contact; the title and relay list follow the add (NETWORK.md §14.5).
    public mutating func add(_ member: MemberID, to groupID: GroupID) throws {
        let now = clock()
        try withGroup(groupID) { tx, keys, group, record, effects, random in
            guard !group.members.contains(member) else { throw DeviceError.alreadyMember(name: try Self.name(of: member, tx: tx)) }
            let bundle = try Self.contactBundle(member, tx: tx, now: now)
            do {
                for envelope in try group.add(bundle, prekeys: keys.prekeys, now: now, using: &random) { effects.sent(envelope) }
            } catch let error as GroupError { throw DeviceError.group(error) }
            effects.event("added", sender: keys.me, subjects: [member])
            try Self.sendContent(.title(record.title), in: &group, record: &record, keys: keys, effects: &effects, now: now, rng: &random)
            // The list in force, with its own sending time: re-sent, not chosen anew, so it
            // neither wins over a newer list nor counts as my choice of relays.
            if !record.relays.isEmpty {
                try Self.sendContent(
                    .relays(record.relays), in: &group, record: &record, keys: keys, effects: &effects, now: now, sentAt: record.relaysSetAt,
                    rng: &random)
            }
        }
    }

    public mutating func remove(_ member: MemberID, from groupID: GroupID) throws {
        let now = clock()
        try withGroup(groupID) { tx, keys, group, record, effects, random in
            guard group.members.contains(member) else { throw DeviceError.notInGroup(name: try Self.name(of: member, tx: tx)) }
            do {
                effects.sent(try group.remove(member, prekeys: keys.prekeys, now: now, using: &random))
            } catch let error as GroupError { throw DeviceError.group(error) }
            effects.event("removed", sender: keys.me, subjects: [member])
            effects.membersLeft = true
        }
    }

    /// A fresh seed for my view (post-compromise security).
    public mutating func update(_ groupID: GroupID) throws {
        let now = clock()
        try withGroup(groupID) { tx, keys, group, record, effects, random in
            do { effects.sent(try group.update(prekeys: keys.prekeys, now: now, using: &random)) } catch let error as GroupError { throw DeviceError.group(error) }
            effects.event("updated", sender: keys.me)
        }
    }

    public mutating func send(text: String, to groupID: GroupID) throws {
        let now = clock()
        let size = text.utf8.count
        guard size <= MessageContent.maximumTextBytes else { throw DeviceError.textTooLong(bytes: size, limit: MessageContent.maximumTextBytes) }
        try withGroup(groupID) { tx, keys, group, record, effects, random in
            try Self.sendContent(.text(text), in: &group, record: &record, keys: keys, effects: &effects, now: now, rng: &random)
        }
    }

    /// Joins a group whose invitation came from someone who is not a contact.
    public mutating func acceptInvitation(_ groupID: GroupID) throws {
        let now = clock()
        let groupConfiguration = configuration.group
        try write { tx, keys, random in
            guard var record = try tx.group(groupID), record.status == .invited, let hash = record.invitation,
                  let entry = try tx.logEntry(group: groupID, hash: hash) else {
                throw DeviceError.noPendingInvitation(title: (try tx.group(groupID))?.title ?? groupID.raw.hex)
            }
            var session = ReceiveSession(keys: keys, now: now, configuration: groupConfiguration, contacts: Set(try tx.contacts().map(\.id)))
            try session.join(record: &record, invitation: entry, tx: tx, rng: &random)
            try session.finish(tx, rng: &random)
        }
    }

    /// Refuses a group's invitation: the group is not joined, its envelopes are dropped, and the
    /// same invitation offered again (by a relay, a peer or a file) is not shown again.
    public mutating func declineInvitation(_ groupID: GroupID) throws {
        try store.write { tx in
            guard var record = try tx.group(groupID), record.status == .invited else {
                throw DeviceError.noPendingInvitation(title: (try tx.group(groupID))?.title ?? groupID.raw.hex)
            }
            record.status = .declined
            try tx.saveGroup(record)
        }
    }

    static func contactBundle(_ id: MemberID, tx: any DeviceStoreTransaction, now: UInt64) throws -> KeyBundle {
        guard let contact = try tx.contacts().first(where: { $0.id == id }) else {
            throw DeviceError.unknownContact(id.raw.hex, candidates: [])
        }
        guard let bundle = try? KeyBundle(wireBytes: contact.bundle) else { throw DeviceError.corruptState("contact \(contact.name)") }
        guard bundle.notAfter >= now else { throw DeviceError.contactBundleExpired(name: contact.name, notAfter: bundle.notAfter) }
        return bundle
    }

    static func name(of id: MemberID, tx: any DeviceStoreTransaction) throws -> String {
        try tx.contacts().first(where: { $0.id == id })?.name ?? String(id.raw.hex.prefix(12))
    }

    /// Encrypts one content as an application message (an update first when the group asks).
    static func sendContent(
        _ kind: MessageContent.Kind, in group: inout Group, record: inout GroupRecord, keys: Keys, effects: inout Effects,
        now: UInt64, sentAt: UInt64? = nil, rng: inout Random
    ) throws {
        var time = now
        if let sentAt { time = sentAt }
        let content = MessageContent(kind, sentAt: time)
        let envelopes: [Envelope]
        do { envelopes = try group.send(content.bytes, prekeys: keys.prekeys, now: now, using: &rng) } catch let error as GroupError { throw DeviceError.group(error) }
        for envelope in envelopes { effects.sent(envelope) }
        if let message = envelopes.last { effects.content(content, from: keys.me, seq: message.seq, record: &record, receivedAt: now) }
    }

    /// One of my operations on one group, as one write transaction.
    mutating func withGroup(
        _ groupID: GroupID,
        _ body: (any DeviceStoreTransaction, Keys, inout Group, inout GroupRecord, inout Effects, inout Random) throws -> Void
    ) throws {
        let now = clock()
        try write { tx, keys, random in
            guard var record = try tx.group(groupID), var group = try Self.decodeGroup(record) else {
                throw DeviceError.unknownGroup(groupID.raw.hex, candidates: [])
            }
            guard group.isMember else { throw DeviceError.notAMember(title: record.title) }
            var effects = Effects(group: groupID, now: now)
            try body(tx, keys, &group, &record, &effects, &random)
            record.state = group.wireBytes
            try effects.settleRelays(tx, record: &record, members: group.members, me: keys.me)
            try tx.saveGroup(record)
            try effects.commit(tx)
        }
    }

    static func decodeGroup(_ record: GroupRecord) throws(DeviceError) -> Group? {
        guard let state = record.state else { return nil }
        do { return try Group(wireBytes: state) } catch { throw .corruptState("group \(record.title): \(error)") }
    }

    /// One write transaction with my keys loaded and kept fresh: expired prekeys deleted, a new
    /// bundle made (and handed to every group) when mine is about to expire. Commits the keys
    /// with whatever `body` wrote, then purges deleted secrets from the disk.
    ///
    /// `purge: false` leaves the checkpoint to the caller (an import checkpoints once, after its
    /// last batch: a checkpoint writes and syncs the database file, which per batch cost more than
    /// the batch itself).
    mutating func write<T>(purge: Bool = true, _ body: (any DeviceStoreTransaction, inout Keys, inout Random) throws -> T) throws -> T {
        let now = clock()
        let configuration = self.configuration
        let store = self.store
        var random = self.random
        defer { self.random = random }
        let result: T = try store.write { tx in
            guard let profile = try tx.profile() else { throw DeviceError.notInitialized }
            var keys = try Keys(profile)
            if keys.prekeys.deleteExpired(now: now) > 0 { keys.changed = true }
            if keys.bundle.notAfter < now + configuration.bundleRefreshMargin {
                keys.bundle = keys.prekeys.generate(identity: keys.identity, notAfter: now + configuration.bundleLifetime, using: &random)
                keys.changed = true
                keys.rotated = true
            }
            if keys.rotated {
                for var record in try tx.groups() where record.status == .joined {
                    guard var group = try Self.decodeGroup(record), group.isMember else { continue }
                    if (try? group.adoptOwnBundle(keys.bundle, now: now)) != nil {
                        record.state = group.wireBytes
                        try tx.saveGroup(record)
                    }
                }
            }
            let result = try body(tx, &keys, &random)
            if keys.changed { try tx.saveProfile(keys.record) }
            // Retention (§10.4): application payloads past it are pruned, a bounded number per write.
            if now > configuration.payloadRetention {
                for entry in try tx.unprunedApplicationEntries(receivedBefore: now - configuration.payloadRetention, limit: 4096) {
                    guard let envelope = try? Envelope(wire: entry.wire, groupID: entry.group) else { continue }
                    try tx.replaceWire(position: entry.position, wire: envelope.pruned().wireBytes, pruned: true)
                }
            }
            // Disappearing messages: what is past a group's timer goes, in this transaction.
            try tx.deleteDisappearedHistory(now: now)
            return result
        }
        if purge { try store.purgeDeletedData() }
        return result
    }
}

// MARK: - Reading

extension Device {
    public func me() throws -> (id: MemberID, name: String) {
        try store.read { tx in
            guard let profile = try tx.profile() else { throw DeviceError.notInitialized }
            let keys = try Keys(profile)
            return (keys.me, keys.name)
        }
    }

    /// A group's history lines (those past its disappearing-messages timer are never shown,
    /// and are deleted by the next write).
    public func history(of groupID: GroupID, after id: Int64 = 0, limit: Int = Int.max) throws -> [HistoryRecord] {
        let now = clock()
        return try store.read { tx in
            let timer = try tx.group(groupID)?.disappearAfter ?? 0
            let lines = try tx.history(group: groupID, after: id, limit: limit)
            guard timer > 0 else { return lines }
            return lines.filter { $0.receivedAt + timer >= now }
        }
    }

    /// Sets a group's disappearing-messages timer on this device (0: off), and applies it at once.
    public mutating func setDisappearingTimer(_ seconds: UInt64, for groupID: GroupID) throws {
        try write { tx, _, _ in
            guard var record = try tx.group(groupID) else { throw DeviceError.unknownGroup(groupID.raw.hex, candidates: []) }
            record.disappearAfter = seconds
            try tx.saveGroup(record)
        }
    }

    /// A display name: mine is "me", a contact's its name, anyone else the start of their ID.
    public func names() throws -> [MemberID: String] {
        try store.read { tx in
            var names: [MemberID: String] = [:]
            for contact in try tx.contacts() { names[contact.id] = contact.name }
            if let profile = try tx.profile(), let keys = try? Keys(profile) { names[keys.me] = keys.name }
            return names
        }
    }
}

/// What one transaction adds beside the group state: envelopes of mine (log and outbox) and
/// history lines.
struct Effects {
    let group: GroupID
    let now: UInt64
    var envelopes: [Envelope] = []
    var lines: [HistoryRecord] = []
    /// Relay lists received or sent in this transaction.
    var suggestions: [RelaySuggestion] = []
    /// Someone left the group: the relay list in force may have been theirs.
    var membersLeft = false

    init(group: GroupID, now: UInt64) {
        self.group = group
        self.now = now
    }

    mutating func sent(_ envelope: Envelope) { envelopes.append(envelope) }

    mutating func event(_ name: String, sender: MemberID?, seq: UInt64? = nil, subjects: [MemberID] = [], text: String = "") {
        lines.append(HistoryRecord(
            group: group, kind: .event, sender: sender, seq: seq, time: now, receivedAt: now, text: text, event: name,
            subjects: subjects))
    }

    /// A decrypted content: a text is a message line; the reserved types change the group record
    /// (last writer wins by sending time, then sender, NETWORK.md §14.5) and show as events.
    mutating func content(_ content: MessageContent, from sender: MemberID, seq: UInt64, record: inout GroupRecord, receivedAt: UInt64) {
        switch content.kind {
        case .text(let text):
            lines.append(HistoryRecord(
                group: group, kind: .message, sender: sender, seq: seq, time: content.sentAt, receivedAt: receivedAt, text: text))
        case .title(let title):
            let newer = (content.sentAt, sender.raw) > (record.titleSetAt, record.titleSetBy?.raw ?? .zero)
            if newer || record.titleSetBy == nil {
                let changed = record.title != title
                record.title = title
                record.titleSetAt = content.sentAt
                record.titleSetBy = sender
                if changed { event("title", sender: sender, seq: seq, text: title) }
            }
        case .relays(let relays):
            // Kept per sender; which list is in force is settled at the end of the transaction,
            // against the members of that moment (§14.5).
            suggestions.append(RelaySuggestion(group: group, sender: sender, sentAt: content.sentAt, relays: relays))
            event("relays", sender: sender, seq: seq, text: relays.joined(separator: " "))
        case .lostSync(let text):
            event("lost-sync", sender: sender, seq: seq, text: text)
        case .unknown(let type):
            event("unreadable", sender: sender, seq: seq, text: "a kind of message (type \(type)) this version cannot show")
        }
    }

    /// Stores each sender's newest relay list and settles which one is in force: the newest by
    /// (sending time, sender ID) among the group's current members, so a removed member's
    /// suggestion is dropped (NETWORK.md §14.5). A list that comes into force is taken up by the
    /// device's relay policy (``RelayPolicy``).
    mutating func settleRelays(_ tx: any DeviceStoreTransaction, record: inout GroupRecord, members: Set<MemberID>, me: MemberID) throws {
        guard !suggestions.isEmpty || (membersLeft && record.relaysSetBy != nil) else { return }
        let stored = Dictionary(try tx.relaySuggestions(group: group).map { ($0.sender, $0) }, uniquingKeysWith: { a, _ in a })
        var newest = stored
        for suggestion in suggestions where newest[suggestion.sender].map({ suggestion.isNewer(than: $0) }) ?? true {
            newest[suggestion.sender] = suggestion
        }
        for (sender, suggestion) in newest where stored[sender] != suggestion { try tx.saveRelaySuggestion(suggestion) }
        let inForce = newest.values.filter { members.contains($0.sender) }.max { $1.isNewer(than: $0) }
        guard inForce?.sender != record.relaysSetBy || inForce?.sentAt != record.relaysSetAt || (inForce?.relays ?? []) != record.relays else {
            return
        }
        record.relays = inForce?.relays ?? []
        record.relaysSetAt = inForce?.sentAt ?? 0
        record.relaysSetBy = inForce?.sender
        guard let inForce else { return }
        let policy = RelayPolicy(rawValue: try tx.setting(RelayPolicy.settingKey) ?? "") ?? .ask
        // My own lists are used when I post them (``Device/setRelays(_:for:)``); one I re-send
        // after an add is not a choice of mine.
        guard inForce.sender != me else { return }
        let isContact = try tx.contacts().contains { $0.id == inForce.sender }
        guard policy == .always || (policy == .contacts && isContact) else { return }
        for text in inForce.relays {
            guard let address = try? RelayAddress(parsing: text), try RelayPolicy.use(address, for: group, tx: tx, now: now) else { continue }
            event("relay-used", sender: inForce.sender, text: address.description)
        }
    }

    func commit(_ tx: any DeviceStoreTransaction) throws {
        for envelope in envelopes {
            try tx.appendLog(LogRecord(
                group: group, sender: envelope.sender, seq: envelope.seq, hash: envelope.hash, kind: envelope.kind.rawValue,
                wire: envelope.wireBytes, receivedAt: now))
            try tx.addToOutbox(group: group, hash: envelope.hash)
        }
        for line in lines { try tx.appendHistory(line) }
    }
}
