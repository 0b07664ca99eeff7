public import DCGKAEncoding
public import CausalBroadcast
public import Sync

/// A device as a holder for the sync engine (NETWORK.md §11): the groups it shares with a peer
/// are those the peer takes part in; what it offers is its envelope log.
extension Device: SyncHolder {
    public func groups(sharedWith peer: MemberID) throws -> [GroupID] {
        try store.read { tx in
            try tx.groups().filter { record in
                guard record.status == .joined, let group = try Self.decodeGroup(record) else { return false }
                return group.keyAgreement.history.isKnownParticipant(peer)
            }.map(\.id).sorted()
        }
    }

    public func holdings(of group: GroupID) throws -> Holdings {
        try store.read { tx in
            guard let record = try tx.group(group) else { return Holdings() }
            return try Self.holdings(record, tx: tx)
        }
    }

    /// In my log's order (a causal order for what I delivered), whatever order they are asked in.
    public func wires(of group: GroupID, _ references: [EnvelopeReference]) throws -> [[UInt8]] {
        try store.read { tx in
            var entries: [LogRecord] = []
            for reference in references {
                if let entry = try tx.logEntry(group: group, hash: reference.hash) { entries.append(entry) }
            }
            return entries.sorted { $0.position < $1.position }.map(\.wire)
        }
    }

    public func wire(of group: GroupID, sender: MemberID, seq: UInt64) throws -> [UInt8]? {
        try store.read { tx in try tx.logEntry(group: group, sender: sender, seq: seq)?.wire }
    }
}
