public import Relay
public import DCGKAEncoding
public import CausalBroadcast
public import Sync
internal import Foundation
internal import GRDB

/// Why a relay store could not be opened or used.
public enum RelayStoreError: Error, Equatable, Sendable, CustomStringConvertible {
    case newerVersion
    case cannotOpen(String)
    case database(String)

    public var description: String {
        switch self {
        case .newerVersion: "the relay's store was written by a newer version of dcgka"
        case .cannotOpen(let why): "the relay's store cannot be opened (\(why))"
        case .database(let why): "the relay's store failed (\(why))"
        }
    }
}

/// The relay's default store (NETWORK.md §13.4): SQLite through GRDB, WAL, one process. Every
/// ``store(_:now:quotas:)`` call is one transaction, so a batch from many links costs one
/// durable commit (`synchronous = FULL`: committed means on disk before any `ack`).
public final class SQLiteRelayStore: RelayStore {
    let pool: DatabasePool
    public let path: String

    public init(path: String) throws {
        self.path = path
        var configuration = Configuration()
        configuration.busyMode = .timeout(10)
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }
        do {
            pool = try DatabasePool(path: path, configuration: configuration)
            let migrator = Self.migrator
            if try pool.read({ try migrator.hasBeenSuperseded($0) }) { throw RelayStoreError.newerVersion }
            try migrator.migrate(pool)
        } catch let error as RelayStoreError {
            throw error
        } catch {
            throw RelayStoreError.cannotOpen("\(error)")
        }
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(sql: """
                CREATE TABLE relayGroup (
                    id BLOB PRIMARY KEY,
                    creator BLOB NOT NULL,
                    createdAt INTEGER NOT NULL,
                    bytes INTEGER NOT NULL DEFAULT 0,
                    envelopes INTEGER NOT NULL DEFAULT 0
                ) WITHOUT ROWID;
                CREATE INDEX relayGroup_creator ON relayGroup(creator);
                CREATE TABLE participant (
                    groupID BLOB NOT NULL,
                    member BLOB NOT NULL,
                    PRIMARY KEY (groupID, member)
                ) WITHOUT ROWID;
                CREATE INDEX participant_member ON participant(member);
                CREATE TABLE envelope (
                    position INTEGER PRIMARY KEY AUTOINCREMENT,
                    groupID BLOB NOT NULL,
                    sender BLOB NOT NULL,
                    seq INTEGER NOT NULL,
                    hash BLOB NOT NULL,
                    kind INTEGER NOT NULL,
                    wire BLOB NOT NULL,
                    receivedAt INTEGER NOT NULL,
                    pruned INTEGER NOT NULL DEFAULT 0,
                    UNIQUE (groupID, sender, seq)
                );
                CREATE INDEX envelope_hash ON envelope(groupID, hash);
                CREATE INDEX envelope_unpruned ON envelope(receivedAt) WHERE kind = 0 AND pruned = 0;
                CREATE TABLE evidence (
                    groupID BLOB NOT NULL,
                    sender BLOB NOT NULL,
                    seq INTEGER NOT NULL,
                    first BLOB NOT NULL,
                    second BLOB NOT NULL,
                    PRIMARY KEY (groupID, sender)
                ) WITHOUT ROWID;
                CREATE TABLE relayGrant (
                    groupID BLOB NOT NULL,
                    holder BLOB NOT NULL,
                    notAfter INTEGER NOT NULL,
                    PRIMARY KEY (groupID, holder)
                ) WITHOUT ROWID;
                CREATE INDEX relayGrant_holder ON relayGrant(holder);
                CREATE TABLE bundle (
                    member BLOB PRIMARY KEY,
                    bytes BLOB NOT NULL,
                    updatedAt INTEGER NOT NULL
                ) WITHOUT ROWID;
                CREATE TABLE identity (
                    id BLOB PRIMARY KEY,
                    firstSeen INTEGER NOT NULL
                ) WITHOUT ROWID;
                """)
        }
        return migrator
    }

    static func blob<T: RawBytes>(_ value: T) -> Data { Data(value.rawBytes) }

    public func participants(of group: GroupID) async throws -> Set<MemberID>? {
        try await pool.read { db in
            guard try Bool.fetchOne(db, sql: "SELECT 1 FROM relayGroup WHERE id = ?", arguments: [Self.blob(group)]) == true else { return nil }
            let rows = try Data.fetchAll(db, sql: "SELECT member FROM participant WHERE groupID = ?", arguments: [Self.blob(group)])
            return Set(rows.compactMap(Self.member))
        }
    }

    public func store(_ batches: [StoreBatch], now: UInt64, quotas: StoreQuotas) async throws -> [[StoreOutcome]] {
        try await pool.write { db in
            try batches.map { batch in try Self.store(batch, db: db, now: now, quotas: quotas) }
        }
    }

    static func store(_ batch: StoreBatch, db: Database, now: UInt64, quotas: StoreQuotas) throws -> [StoreOutcome] {
        let group = blob(batch.group)
        var outcomes: [StoreOutcome] = []
        for item in batch.envelopes {
            let envelope = item.envelope
            let existing = try Data.fetchOne(
                db.cachedStatement(sql: "SELECT hash FROM envelope WHERE groupID = ? AND sender = ? AND seq = ?"),
                arguments: [group, blob(envelope.sender), Int64(envelope.seq)])
            if let existing {
                if existing == Data(envelope.hash.bytes) {
                    outcomes.append(.duplicate)
                } else {
                    let held = try Data.fetchOne(
                        db, sql: "SELECT wire FROM envelope WHERE groupID = ? AND sender = ? AND seq = ?",
                        arguments: [group, blob(envelope.sender), Int64(envelope.seq)]) ?? Data()
                    try db.execute(
                        sql: "INSERT OR IGNORE INTO evidence (groupID, sender, seq, first, second) VALUES (?, ?, ?, ?, ?)",
                        arguments: [group, blob(envelope.sender), Int64(envelope.seq), held, Data(item.wire)])
                    outcomes.append(.fork)
                }
                continue
            }
            if envelope.kind == .create {
                // The create makes the group (its ID binds the creator, checked before); the
                // creator's quota of groups counts here.
                let owned = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM relayGroup WHERE creator = ?", arguments: [blob(envelope.sender)]) ?? 0
                guard owned < quotas.groupsPerIdentity else {
                    outcomes.append(.refused(.quotaExceeded("\(quotas.groupsPerIdentity) groups per identity")))
                    continue
                }
                try db.execute(
                    sql: "INSERT OR IGNORE INTO relayGroup (id, creator, createdAt) VALUES (?, ?, ?)",
                    arguments: [group, blob(envelope.sender), Int64(now)])
            }
            guard let usage = try Row.fetchOne(db.cachedStatement(sql: "SELECT bytes, envelopes FROM relayGroup WHERE id = ?"), arguments: [group]) else {
                outcomes.append(.refused(.unknownGroup))
                continue
            }
            let bytes: Int64 = usage["bytes"]
            let count: Int64 = usage["envelopes"]
            guard count < quotas.groupEnvelopes, bytes + Int64(item.wire.count) <= quotas.groupBytes else {
                outcomes.append(.refused(.quotaExceeded("the group's storage at this relay")))
                continue
            }
            try db.cachedStatement(sql: """
                INSERT INTO envelope (groupID, sender, seq, hash, kind, wire, receivedAt, pruned) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                """).execute(arguments: [
                    group, blob(envelope.sender), Int64(envelope.seq), Data(envelope.hash.bytes), Int64(envelope.kind.rawValue),
                    Data(item.wire), Int64(now), envelope.isPruned ? 1 : 0,
                ])
            try db.cachedStatement(sql: "UPDATE relayGroup SET bytes = bytes + ?, envelopes = envelopes + 1 WHERE id = ?")
                .execute(arguments: [Int64(item.wire.count), group])
            for name in item.names {
                try db.cachedStatement(sql: "INSERT OR IGNORE INTO participant (groupID, member) VALUES (?, ?)")
                    .execute(arguments: [group, blob(name)])
            }
            outcomes.append(.stored)
        }
        return outcomes
    }

    public func groups(readableBy peer: MemberID, now: UInt64) async throws -> [GroupID] {
        try await pool.read { db in
            let rows = try Data.fetchAll(db, sql: """
                SELECT groupID FROM participant WHERE member = ?
                UNION SELECT groupID FROM relayGrant WHERE holder = ? AND notAfter > ?
                """, arguments: [Self.blob(peer), Self.blob(peer), Int64(clamping: now)])
            return rows.compactMap(Self.groupID).sorted()
        }
    }

    public func holdings(of group: GroupID) async throws -> Holdings {
        try await pool.read { db in
            var holdings = Holdings()
            let rows = try Row.fetchCursor(db.cachedStatement(sql: "SELECT sender, seq, hash FROM envelope WHERE groupID = ?"), arguments: [Self.blob(group)])
            while let row = try rows.next() {
                guard let sender = Self.member(row["sender"]), let hash = Bytes32(Array(row["hash"] as Data)) else { continue }
                holdings.insert(sender: sender, seq: UInt64(row["seq"] as Int64), hash: hash)
            }
            return holdings
        }
    }

    public func wires(of group: GroupID, _ references: [EnvelopeReference]) async throws -> [[UInt8]] {
        try await pool.read { db in
            var found: [(Int64, [UInt8])] = []
            let statement = try db.cachedStatement(sql: "SELECT position, wire, hash FROM envelope WHERE groupID = ? AND sender = ? AND seq = ?")
            for reference in references {
                guard let row = try Row.fetchOne(statement, arguments: [Self.blob(group), Self.blob(reference.sender), Int64(reference.seq)]),
                      (row["hash"] as Data) == Data(reference.hash.bytes)
                else { continue }
                found.append((row["position"], Array(row["wire"] as Data)))
            }
            return found.sorted { $0.0 < $1.0 }.map(\.1)
        }
    }

    public func wire(of group: GroupID, sender: MemberID, seq: UInt64) async throws -> [UInt8]? {
        try await pool.read { db in
            try Data.fetchOne(db, sql: "SELECT wire FROM envelope WHERE groupID = ? AND sender = ? AND seq = ?",
                              arguments: [Self.blob(group), Self.blob(sender), Int64(seq)]).map { Array($0) }
        }
    }

    public func gaps(of group: GroupID, below firsts: [MemberID: UInt64]) async throws -> [SeqRange] {
        try await pool.read { db in
            let statement = try db.cachedStatement(sql: "SELECT MAX(seq) FROM envelope WHERE groupID = ? AND sender = ? AND seq < ?")
            var ranges: [SeqRange] = []
            for (sender, first) in firsts.sorted(by: { $0.key < $1.key }) where first > 1 {
                let held = try Int64.fetchOne(statement, arguments: [Self.blob(group), Self.blob(sender), Int64(first)]) ?? 0
                if UInt64(held) + 1 < first { ranges.append(SeqRange(sender: sender, from: UInt64(held) + 1, through: first - 1)) }
            }
            return ranges
        }
    }

    public func evidence(of group: GroupID) async throws -> [(first: [UInt8], second: [UInt8])] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT first, second FROM evidence WHERE groupID = ? ORDER BY sender", arguments: [Self.blob(group)])
                .map { (Array($0["first"] as Data), Array($0["second"] as Data)) }
        }
    }

    public func prunedRanges(of group: GroupID) async throws -> [SeqRange] {
        try await pool.read { db in
            var ranges: [SeqRange] = []
            let rows = try Row.fetchAll(db, sql: "SELECT sender, seq FROM envelope WHERE groupID = ? AND pruned = 1 ORDER BY sender, seq",
                                        arguments: [Self.blob(group)])
            for row in rows {
                guard let sender = Self.member(row["sender"]) else { continue }
                let seq = UInt64(row["seq"] as Int64)
                if let last = ranges.last, last.sender == sender, last.through + 1 == seq {
                    ranges[ranges.count - 1].through = seq
                } else {
                    ranges.append(SeqRange(sender: sender, from: seq, through: seq))
                }
            }
            return ranges
        }
    }

    public func prune(receivedBefore time: UInt64) async throws -> Int {
        try await pool.write { db in
            let rows = try Row.fetchAll(db, sql: """
                SELECT position, groupID, wire FROM envelope WHERE kind = 0 AND pruned = 0 AND receivedAt < ?
                """, arguments: [Int64(clamping: time)])
            var count = 0
            for row in rows {
                guard let group = Self.groupID(row["groupID"]),
                      let envelope = try? Envelope(wire: Array(row["wire"] as Data), groupID: group)
                else { continue }
                let header = envelope.pruned().wireBytes
                let saved = Int64((row["wire"] as Data).count - header.count)
                try db.execute(sql: "UPDATE envelope SET wire = ?, pruned = 1 WHERE position = ?", arguments: [Data(header), row["position"] as Int64])
                try db.execute(sql: "UPDATE relayGroup SET bytes = bytes - ? WHERE id = ?", arguments: [saved, row["groupID"] as Data])
                count += 1
            }
            return count
        }
    }

    public func saveGrant(_ grant: Grant) async throws {
        try await pool.write { db in
            try db.execute(sql: """
                INSERT INTO relayGrant (groupID, holder, notAfter) VALUES (?, ?, ?)
                ON CONFLICT (groupID, holder) DO UPDATE SET notAfter = max(notAfter, excluded.notAfter)
                """, arguments: [Self.blob(grant.group), Self.blob(grant.holder), Int64(clamping: grant.notAfter)])
        }
    }

    public func publishBundle(member: MemberID, bundle: [UInt8], now: UInt64) async throws {
        try await pool.write { db in
            try db.execute(sql: """
                INSERT INTO bundle (member, bytes, updatedAt) VALUES (?, ?, ?)
                ON CONFLICT (member) DO UPDATE SET bytes = excluded.bytes, updatedAt = excluded.updatedAt
                """, arguments: [Self.blob(member), Data(bundle), Int64(clamping: now)])
        }
    }

    public func bundle(of member: MemberID) async throws -> [UInt8]? {
        try await pool.read { db in
            try Data.fetchOne(db, sql: "SELECT bytes FROM bundle WHERE member = ?", arguments: [Self.blob(member)]).map { Array($0) }
        }
    }

    public func noteIdentity(_ id: MemberID, now: UInt64) async throws -> Bool {
        try await pool.write { db in
            let seen = try Bool.fetchOne(db, sql: "SELECT 1 FROM identity WHERE id = ?", arguments: [Self.blob(id)]) == true
            if !seen { try db.execute(sql: "INSERT INTO identity (id, firstSeen) VALUES (?, ?)", arguments: [Self.blob(id), Int64(clamping: now)]) }
            return seen
        }
    }

    public func statistics() async throws -> RelayStatistics {
        try await pool.read { db in
            RelayStatistics(
                groups: try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM relayGroup") ?? 0,
                envelopes: try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM envelope") ?? 0,
                bytes: try Int64.fetchOne(db, sql: "SELECT COALESCE(SUM(bytes), 0) FROM relayGroup") ?? 0,
                evidence: try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM evidence") ?? 0,
                prunedPayloads: try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM envelope WHERE pruned = 1") ?? 0)
        }
    }

    static func member(_ data: Data?) -> MemberID? {
        guard let data, let bytes = Bytes32(Array(data)) else { return nil }
        return MemberID(bytes)
    }

    static func groupID(_ data: Data?) -> GroupID? {
        guard let data, let bytes = Bytes32(Array(data)) else { return nil }
        return GroupID(bytes)
    }
}

/// Identifiers stored as their 32 raw bytes.
protocol RawBytes { var rawBytes: [UInt8] { get } }
extension MemberID: RawBytes { var rawBytes: [UInt8] { bytes } }
extension GroupID: RawBytes { var rawBytes: [UInt8] { bytes } }
