public import Relay
public import DCGKAEncoding
public import CausalBroadcast
public import Sync
internal import PostgresNIO
internal import NIOCore
public import Logging
internal import Foundation

/// Why a PostgreSQL store URL is not usable.
public enum PostgresStoreError: Error, Equatable, Sendable, CustomStringConvertible {
    case badURL(String)

    public var description: String {
        switch self {
        case .badURL(let why): "not a PostgreSQL store (postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE): \(why)"
        }
    }
}

/// The relay's store on PostgreSQL (NETWORK.md §13.4), through postgres-nio. Any number of relay
/// processes share one database: each stored envelope is announced in the same transaction by
/// `NOTIFY dcgka_envelopes` with a pointer (`group:sender:from:through:process`, far below the
/// 8,000-byte payload limit), so the notification is sent only if the envelope committed; every other
/// process fetches it and pushes it to its own subscribers.
public final class PostgresRelayStore: RelayStore {
    let client: PostgresClient
    let logger: Logger
    /// Tells this process's own notifications from the others'.
    let process = UUID().uuidString
    static let channel = "dcgka_envelopes"

    /// - Parameter url: `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE` (no TLS: a database on
    ///   loopback or a private network).
    public init(url: String, logger: Logger) throws {
        guard let components = URLComponents(string: url), components.scheme == "postgres" || components.scheme == "postgresql" else {
            throw PostgresStoreError.badURL("the scheme must be postgres://")
        }
        guard let host = components.host, !host.isEmpty else { throw PostgresStoreError.badURL("the host is missing") }
        guard let user = components.user, !user.isEmpty else { throw PostgresStoreError.badURL("the user is missing") }
        let database = String(components.path.dropFirst())
        guard !database.isEmpty else { throw PostgresStoreError.badURL("the database is missing") }
        let configuration = PostgresClient.Configuration(
            host: host, port: components.port ?? 5432, username: user, password: components.password, database: database, tls: .disable)
        client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        self.logger = logger
    }

    /// The schema (idempotent; a version row refuses a database written by a newer relay).
    func migrate() async throws {
        try await client.withTransaction(logger: logger) { connection in
            try await connection.query("SELECT pg_advisory_xact_lock(7447)", logger: logger)
            try await connection.query("""
                CREATE TABLE IF NOT EXISTS relay_schema (version INTEGER NOT NULL)
                """, logger: logger)
            var version: Int32?
            for try await value in try await connection.query("SELECT version FROM relay_schema", logger: logger).decode(Int32.self) {
                version = value
            }
            if let version, version > 1 { throw RelayStoreFailure.newerVersion }
            guard version == nil else { return }
            for statement in Self.schema {
                try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
            }
            try await connection.query("INSERT INTO relay_schema (version) VALUES (1)", logger: logger)
        }
    }

    static let schema = [
        """
        CREATE TABLE relay_group (
            id BYTEA PRIMARY KEY, creator BYTEA NOT NULL, created_at BIGINT NOT NULL,
            bytes BIGINT NOT NULL DEFAULT 0, envelopes BIGINT NOT NULL DEFAULT 0)
        """,
        "CREATE INDEX relay_group_creator ON relay_group (creator)",
        "CREATE TABLE participant (group_id BYTEA NOT NULL, member BYTEA NOT NULL, PRIMARY KEY (group_id, member))",
        "CREATE INDEX participant_member ON participant (member)",
        """
        CREATE TABLE envelope (
            position BIGSERIAL PRIMARY KEY, group_id BYTEA NOT NULL, sender BYTEA NOT NULL, seq BIGINT NOT NULL,
            hash BYTEA NOT NULL, kind SMALLINT NOT NULL, wire BYTEA NOT NULL, received_at BIGINT NOT NULL,
            pruned BOOLEAN NOT NULL DEFAULT FALSE, UNIQUE (group_id, sender, seq))
        """,
        "CREATE INDEX envelope_unpruned ON envelope (received_at) WHERE kind = 0 AND NOT pruned",
        """
        CREATE TABLE evidence (
            group_id BYTEA NOT NULL, sender BYTEA NOT NULL, seq BIGINT NOT NULL, first BYTEA NOT NULL, second BYTEA NOT NULL,
            PRIMARY KEY (group_id, sender))
        """,
        "CREATE TABLE relay_grant (group_id BYTEA NOT NULL, holder BYTEA NOT NULL, not_after BIGINT NOT NULL, PRIMARY KEY (group_id, holder))",
        "CREATE INDEX relay_grant_holder ON relay_grant (holder)",
        "CREATE TABLE bundle (member BYTEA PRIMARY KEY, bytes BYTEA NOT NULL, updated_at BIGINT NOT NULL)",
        "CREATE TABLE identity (id BYTEA PRIMARY KEY, first_seen BIGINT NOT NULL)",
    ]

    static func buffer(_ bytes: [UInt8]) -> ByteBuffer { ByteBuffer(bytes: bytes) }
    static func bytes(_ buffer: ByteBuffer) -> [UInt8] { Array(buffer.readableBytesView) }

    public func participants(of group: GroupID) async throws -> Set<MemberID>? {
        let id = Self.buffer(group.bytes)
        var exists = false
        for try await _ in try await client.query("SELECT 1 FROM relay_group WHERE id = \(id)", logger: logger).decode(Int32.self) { exists = true }
        guard exists else { return nil }
        var members: Set<MemberID> = []
        for try await member in try await client.query("SELECT member FROM participant WHERE group_id = \(id)", logger: logger).decode(ByteBuffer.self) {
            if let id = MemberID(bytes: Self.bytes(member)) { members.insert(id) }
        }
        return members
    }

    public func store(_ batches: [StoreBatch], now: UInt64, quotas: StoreQuotas) async throws -> [[StoreOutcome]] {
        let logger = logger
        let process = process
        return try await client.withTransaction(logger: logger) { connection in
            var all: [[StoreOutcome]] = []
            for batch in batches {
                all.append(try await Self.store(batch, connection: connection, now: now, quotas: quotas, process: process, logger: logger))
            }
            return all
        }
    }

    /// One batch, set-based: one query finds what is already held, one inserts the rest (with
    /// `unnest` over arrays), one updates the group's usage, one adds participants, and one
    /// `pg_notify` per run of one sender's seqs, so a batch costs a handful of round trips
    /// whatever its size.
    static func store(
        _ batch: StoreBatch, connection: PostgresConnection, now: UInt64, quotas: StoreQuotas, process: String, logger: Logger
    ) async throws -> [StoreOutcome] {
        let group = buffer(batch.group.bytes)
        let time = Int64(clamping: now)
        let items = batch.envelopes
        var outcomes = [StoreOutcome?](repeating: nil, count: items.count)

        // What is held at these (sender, seq) already: duplicates and forks.
        var held: [EnvelopeKey: [UInt8]] = [:]
        let senders = items.map { buffer($0.envelope.sender.bytes) }
        let seqs = items.map { Int64($0.envelope.seq) }
        for try await (sender, seq, hash) in try await connection.query("""
            SELECT e.sender, e.seq, e.hash FROM envelope e
            JOIN unnest(\(senders)::bytea[], \(seqs)::bigint[]) AS k(sender, seq) ON e.sender = k.sender AND e.seq = k.seq
            WHERE e.group_id = \(group)
            """, logger: logger).decode((ByteBuffer, Int64, ByteBuffer).self) {
            guard let member = MemberID(bytes: bytes(sender)) else { continue }
            held[EnvelopeKey(sender: member, seq: UInt64(seq))] = bytes(hash)
        }
        for (index, item) in items.enumerated() {
            let key = EnvelopeKey(sender: item.envelope.sender, seq: item.envelope.seq)
            guard let hash = held[key] else { continue }
            if hash == item.envelope.hash.bytes {
                outcomes[index] = .duplicate
            } else {
                let sender = buffer(item.envelope.sender.bytes)
                let seq = Int64(item.envelope.seq)
                let wire = buffer(item.wire)
                try await connection.query("""
                    INSERT INTO evidence (group_id, sender, seq, first, second)
                    SELECT group_id, sender, seq, wire, \(wire) FROM envelope WHERE group_id = \(group) AND sender = \(sender) AND seq = \(seq)
                    ON CONFLICT DO NOTHING
                    """, logger: logger)
                outcomes[index] = .fork
            }
        }

        // A create makes the group (its ID binds the creator, checked before admission).
        for (index, item) in items.enumerated() where outcomes[index] == nil && item.envelope.kind == .create {
            let creator = buffer(item.envelope.sender.bytes)
            var owned: Int64 = 0
            for try await count in try await connection.query(
                "SELECT COUNT(*) FROM relay_group WHERE creator = \(creator)", logger: logger
            ).decode(Int64.self) { owned = count }
            guard owned < quotas.groupsPerIdentity else {
                outcomes[index] = .refused(.quotaExceeded("\(quotas.groupsPerIdentity) groups per identity"))
                continue
            }
            try await connection.query(
                "INSERT INTO relay_group (id, creator, created_at) VALUES (\(group), \(creator), \(time)) ON CONFLICT DO NOTHING",
                logger: logger)
        }

        var usage: (Int64, Int64)?
        for try await row in try await connection.query(
            "SELECT bytes, envelopes FROM relay_group WHERE id = \(group) FOR UPDATE", logger: logger
        ).decode((Int64, Int64).self) { usage = row }
        var candidates: [Int] = []
        if var (bytesUsed, envelopesUsed) = usage {
            for index in items.indices where outcomes[index] == nil {
                let size = Int64(items[index].wire.count)
                guard envelopesUsed < quotas.groupEnvelopes, bytesUsed + size <= quotas.groupBytes else {
                    outcomes[index] = .refused(.quotaExceeded("the group's storage at this relay"))
                    continue
                }
                bytesUsed += size
                envelopesUsed += 1
                candidates.append(index)
            }
        } else {
            for index in items.indices where outcomes[index] == nil { outcomes[index] = .refused(.unknownGroup) }
        }

        // The insert; two processes racing for one (sender, seq) resolve by the unique key.
        var inserted: Set<EnvelopeKey> = []
        if !candidates.isEmpty {
            let chosen = candidates.map { items[$0] }
            let senders = chosen.map { buffer($0.envelope.sender.bytes) }
            let seqs = chosen.map { Int64($0.envelope.seq) }
            let hashes = chosen.map { buffer($0.envelope.hash.bytes) }
            let kinds = chosen.map { Int16($0.envelope.kind.rawValue) }
            let wires = chosen.map { buffer($0.wire) }
            let pruned = chosen.map { $0.envelope.isPruned }
            for try await (sender, seq) in try await connection.query("""
                INSERT INTO envelope (group_id, sender, seq, hash, kind, wire, received_at, pruned)
                SELECT \(group), k.sender, k.seq, k.hash, k.kind, k.wire, \(time), k.pruned
                FROM unnest(\(senders)::bytea[], \(seqs)::bigint[], \(hashes)::bytea[], \(kinds)::smallint[], \(wires)::bytea[], \(pruned)::boolean[])
                    WITH ORDINALITY AS k(sender, seq, hash, kind, wire, pruned, n)
                ORDER BY k.n
                ON CONFLICT (group_id, sender, seq) DO NOTHING RETURNING sender, seq
                """, logger: logger).decode((ByteBuffer, Int64).self) {
                if let member = MemberID(bytes: bytes(sender)) { inserted.insert(EnvelopeKey(sender: member, seq: UInt64(seq))) }
            }
        }
        var addedBytes: Int64 = 0
        var names: Set<MemberID> = []
        var runs: [MemberID: [UInt64]] = [:]
        for index in candidates {
            let item = items[index]
            let key = EnvelopeKey(sender: item.envelope.sender, seq: item.envelope.seq)
            guard inserted.contains(key) else {
                outcomes[index] = .duplicate
                continue
            }
            outcomes[index] = .stored
            addedBytes += Int64(item.wire.count)
            names.formUnion(item.names)
            runs[item.envelope.sender, default: []].append(item.envelope.seq)
        }
        if !inserted.isEmpty {
            let count = Int64(inserted.count)
            try await connection.query(
                "UPDATE relay_group SET bytes = bytes + \(addedBytes), envelopes = envelopes + \(count) WHERE id = \(group)", logger: logger)
        }
        if !names.isEmpty {
            let members = names.sorted().map { buffer($0.bytes) }
            try await connection.query("""
                INSERT INTO participant (group_id, member) SELECT \(group), m FROM unnest(\(members)::bytea[]) AS m ON CONFLICT DO NOTHING
                """, logger: logger)
        }
        // Pointers for the other processes: group, sender, a run of seqs, and who stored it.
        for (sender, seqs) in runs.sorted(by: { $0.key < $1.key }) {
            var start = 0
            let sorted = seqs.sorted()
            while start < sorted.count {
                var end = start
                while end + 1 < sorted.count, sorted[end + 1] == sorted[end] + 1 { end += 1 }
                let pointer = "\(batch.group.raw.hex):\(sender.raw.hex):\(sorted[start]):\(sorted[end]):\(process)"
                try await connection.query("SELECT pg_notify(\(channel), \(pointer))", logger: logger)
                start = end + 1
            }
        }
        return outcomes.map { $0 ?? .refused(.unknownGroup) }
    }

    public func groups(readableBy peer: MemberID, now: UInt64) async throws -> [GroupID] {
        let id = Self.buffer(peer.bytes)
        let time = Int64(clamping: now)
        var groups: [GroupID] = []
        for try await group in try await client.query("""
            SELECT group_id FROM participant WHERE member = \(id)
            UNION SELECT group_id FROM relay_grant WHERE holder = \(id) AND not_after > \(time)
            """, logger: logger).decode(ByteBuffer.self) {
            if let raw = Bytes32(Self.bytes(group)) { groups.append(GroupID(raw)) }
        }
        return groups.sorted()
    }

    public func holdings(of group: GroupID) async throws -> Holdings {
        var holdings = Holdings()
        let id = Self.buffer(group.bytes)
        for try await (sender, seq, hash) in try await client.query(
            "SELECT sender, seq, hash FROM envelope WHERE group_id = \(id)", logger: logger
        ).decode((ByteBuffer, Int64, ByteBuffer).self) {
            guard let member = MemberID(bytes: Self.bytes(sender)), let hash = Bytes32(Self.bytes(hash)) else { continue }
            holdings.insert(sender: member, seq: UInt64(seq), hash: hash)
        }
        return holdings
    }

    public func wires(of group: GroupID, _ references: [EnvelopeReference]) async throws -> [[UInt8]] {
        guard !references.isEmpty else { return [] }
        let id = Self.buffer(group.bytes)
        let wanted = Set(references.map { EnvelopeKey(sender: $0.sender, seq: $0.seq) })
        let hashes = Dictionary(references.map { (EnvelopeKey(sender: $0.sender, seq: $0.seq), $0.hash) }, uniquingKeysWith: { a, _ in a })
        var found: [(Int64, [UInt8])] = []
        // One scan of the group (what a peer lacks is usually a long run of it).
        for try await (position, sender, seq, hash, wire) in try await client.query(
            "SELECT position, sender, seq, hash, wire FROM envelope WHERE group_id = \(id) ORDER BY position", logger: logger
        ).decode((Int64, ByteBuffer, Int64, ByteBuffer, ByteBuffer).self) {
            guard let member = MemberID(bytes: Self.bytes(sender)) else { continue }
            let key = EnvelopeKey(sender: member, seq: UInt64(seq))
            guard wanted.contains(key), hashes[key]?.bytes == Self.bytes(hash) else { continue }
            found.append((position, Self.bytes(wire)))
        }
        return found.map(\.1)
    }

    public func wire(of group: GroupID, sender: MemberID, seq: UInt64) async throws -> [UInt8]? {
        let id = Self.buffer(group.bytes)
        let member = Self.buffer(sender.bytes)
        let position = Int64(seq)
        var wire: [UInt8]?
        for try await value in try await client.query(
            "SELECT wire FROM envelope WHERE group_id = \(id) AND sender = \(member) AND seq = \(position)", logger: logger
        ).decode(ByteBuffer.self) { wire = Self.bytes(value) }
        return wire
    }

    public func gaps(of group: GroupID, below firsts: [MemberID: UInt64]) async throws -> [SeqRange] {
        let id = Self.buffer(group.bytes)
        var ranges: [SeqRange] = []
        for (sender, first) in firsts.sorted(by: { $0.key < $1.key }) where first > 1 {
            let member = Self.buffer(sender.bytes)
            let below = Int64(first)
            var held: Int64 = 0
            for try await value in try await client.query(
                "SELECT COALESCE(MAX(seq), 0)::BIGINT FROM envelope WHERE group_id = \(id) AND sender = \(member) AND seq < \(below)",
                logger: logger
            ).decode(Int64.self) { held = value }
            if UInt64(held) + 1 < first { ranges.append(SeqRange(sender: sender, from: UInt64(held) + 1, through: first - 1)) }
        }
        return ranges
    }

    /// One sender's envelopes `from...through`, in seq order (a notification's pointer).
    func run(of group: GroupID, sender: MemberID, from: UInt64, through: UInt64) async throws -> [[UInt8]] {
        let id = Self.buffer(group.bytes)
        let member = Self.buffer(sender.bytes)
        let low = Int64(from)
        let high = Int64(through)
        var wires: [[UInt8]] = []
        for try await wire in try await client.query(
            "SELECT wire FROM envelope WHERE group_id = \(id) AND sender = \(member) AND seq BETWEEN \(low) AND \(high) ORDER BY seq",
            logger: logger
        ).decode(ByteBuffer.self) { wires.append(Self.bytes(wire)) }
        return wires
    }

    public func evidence(of group: GroupID) async throws -> [(first: [UInt8], second: [UInt8])] {
        let id = Self.buffer(group.bytes)
        var pairs: [(first: [UInt8], second: [UInt8])] = []
        for try await (first, second) in try await client.query(
            "SELECT first, second FROM evidence WHERE group_id = \(id) ORDER BY sender", logger: logger
        ).decode((ByteBuffer, ByteBuffer).self) { pairs.append((Self.bytes(first), Self.bytes(second))) }
        return pairs
    }

    public func prunedRanges(of group: GroupID) async throws -> [SeqRange] {
        let id = Self.buffer(group.bytes)
        var ranges: [SeqRange] = []
        for try await (sender, seq) in try await client.query(
            "SELECT sender, seq FROM envelope WHERE group_id = \(id) AND pruned ORDER BY sender, seq", logger: logger
        ).decode((ByteBuffer, Int64).self) {
            guard let member = MemberID(bytes: Self.bytes(sender)) else { continue }
            let seq = UInt64(seq)
            if let last = ranges.last, last.sender == member, last.through + 1 == seq {
                ranges[ranges.count - 1].through = seq
            } else {
                ranges.append(SeqRange(sender: member, from: seq, through: seq))
            }
        }
        return ranges
    }

    public func prune(receivedBefore time: UInt64) async throws -> Int {
        let cutoff = Int64(clamping: time)
        var rows: [(Int64, ByteBuffer, ByteBuffer)] = []
        for try await row in try await client.query(
            "SELECT position, group_id, wire FROM envelope WHERE kind = 0 AND NOT pruned AND received_at < \(cutoff)", logger: logger
        ).decode((Int64, ByteBuffer, ByteBuffer).self) { rows.append(row) }
        var count = 0
        for (position, groupBytes, wireBytes) in rows {
            guard let raw = Bytes32(Self.bytes(groupBytes)),
                  let envelope = try? Envelope(wire: Self.bytes(wireBytes), groupID: GroupID(raw))
            else { continue }
            let header = Self.buffer(envelope.pruned().wireBytes)
            let saved = Int64(wireBytes.readableBytes - header.readableBytes)
            try await client.withTransaction(logger: logger) { connection in
                try await connection.query("UPDATE envelope SET wire = \(header), pruned = TRUE WHERE position = \(position)", logger: logger)
                try await connection.query("UPDATE relay_group SET bytes = bytes - \(saved) WHERE id = \(groupBytes)", logger: logger)
            }
            count += 1
        }
        return count
    }

    public func saveGrant(_ grant: Grant) async throws {
        let group = Self.buffer(grant.group.bytes)
        let holder = Self.buffer(grant.holder.bytes)
        let notAfter = Int64(clamping: grant.notAfter)
        try await client.query("""
            INSERT INTO relay_grant (group_id, holder, not_after) VALUES (\(group), \(holder), \(notAfter))
            ON CONFLICT (group_id, holder) DO UPDATE SET not_after = GREATEST(relay_grant.not_after, excluded.not_after)
            """, logger: logger)
    }

    public func publishBundle(member: MemberID, bundle: [UInt8], now: UInt64) async throws {
        let id = Self.buffer(member.bytes)
        let bytes = Self.buffer(bundle)
        let time = Int64(clamping: now)
        try await client.query("""
            INSERT INTO bundle (member, bytes, updated_at) VALUES (\(id), \(bytes), \(time))
            ON CONFLICT (member) DO UPDATE SET bytes = excluded.bytes, updated_at = excluded.updated_at
            """, logger: logger)
    }

    public func bundle(of member: MemberID) async throws -> [UInt8]? {
        let id = Self.buffer(member.bytes)
        var bundle: [UInt8]?
        for try await value in try await client.query("SELECT bytes FROM bundle WHERE member = \(id)", logger: logger).decode(ByteBuffer.self) {
            bundle = Self.bytes(value)
        }
        return bundle
    }

    public func noteIdentity(_ id: MemberID, now: UInt64) async throws -> Bool {
        let member = Self.buffer(id.bytes)
        let time = Int64(clamping: now)
        var inserted = false
        for try await _ in try await client.query(
            "INSERT INTO identity (id, first_seen) VALUES (\(member), \(time)) ON CONFLICT DO NOTHING RETURNING first_seen", logger: logger
        ).decode(Int64.self) { inserted = true }
        return !inserted
    }

    public func statistics() async throws -> RelayStatistics {
        var result = RelayStatistics(groups: 0, envelopes: 0, bytes: 0, evidence: 0, prunedPayloads: 0)
        for try await (groups, envelopes, bytes, evidence, pruned) in try await client.query("""
            SELECT (SELECT COUNT(*) FROM relay_group), (SELECT COUNT(*) FROM envelope),
                   (SELECT COALESCE(SUM(bytes), 0)::BIGINT FROM relay_group), (SELECT COUNT(*) FROM evidence),
                   (SELECT COUNT(*) FROM envelope WHERE pruned)
            """, logger: logger).decode((Int64, Int64, Int64, Int64, Int64).self) {
            result = RelayStatistics(groups: Int(groups), envelopes: Int(envelopes), bytes: bytes, evidence: Int(evidence), prunedPayloads: Int(pruned))
        }
        return result
    }

    /// Runs the connection pool, migrates, then listens for the other processes' envelopes.
    public func run(foreign: @escaping @Sendable (GroupID, [[UInt8]]) async -> Void) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await self.client.run() }
            group.addTask {
                try await self.listen(foreign: foreign)
            }
            try await group.next()
            group.cancelAll()
        }
    }

    /// Waits until the pool answers and the schema exists (the server calls it before listening).
    public func ready() async throws {
        var delay = 0.05
        while true {
            do {
                try await migrate()
                return
            } catch let error as RelayStoreFailure {
                throw error
            } catch {
                if delay > 3 { throw error }
                try await Task.sleep(for: .seconds(delay))
                delay *= 2
            }
        }
    }

    func listen(foreign: @escaping @Sendable (GroupID, [[UInt8]]) async -> Void) async throws {
        while !Task.isCancelled {
            do {
                try await client.withConnection { connection in
                    try await connection.listen(on: Self.channel) { notifications in
                        for try await notification in notifications {
                            let parts = notification.payload.split(separator: ":")
                            guard parts.count == 5, String(parts[4]) != process,
                                  let group = Bytes32(hex: String(parts[0])), let sender = Bytes32(hex: String(parts[1])),
                                  let from = UInt64(parts[2]), let through = UInt64(parts[3]), from <= through,
                                  through - from < 65_536
                            else { continue }
                            let wires = try await run(of: GroupID(group), sender: MemberID(sender), from: from, through: through)
                            if !wires.isEmpty { await foreign(GroupID(group), wires) }
                        }
                    }
                }
            } catch {
                if Task.isCancelled { return }
                logger.warning("LISTEN failed; retrying", metadata: ["error": "\(error)"])
                try await Task.sleep(for: .seconds(1))
            }
        }
    }
}

/// Failures of the PostgreSQL store itself.
enum RelayStoreFailure: Error, CustomStringConvertible {
    case newerVersion
    var description: String { "the relay's database was written by a newer version of dcgka" }
}

struct EnvelopeKey: Hashable {
    var sender: MemberID
    var seq: UInt64
}
