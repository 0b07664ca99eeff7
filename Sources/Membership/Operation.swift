public import DCGKAEncoding

/// What a membership operation does (§4.1).
public enum MembershipOperationKind: Hashable, Sendable {
    /// Founds the group. `members` are the initial members besides the creator, in the order given;
    /// the creator is the operation's sender.
    case create(members: [MemberID])
    case add(MemberID)
    case remove(MemberID)
}

/// A create, add or remove, named by the `(sender, seq)` of the envelope that carried it.
public struct MembershipOperation: Hashable, Sendable, WireCodable {
    public var id: OperationID
    public var kind: MembershipOperationKind

    public init(id: OperationID, kind: MembershipOperationKind) {
        self.id = id
        self.kind = kind
    }

    /// Largest number of initial members a create may list (the member table of a state holds at
    /// most ``MembershipState/maxMembers`` IDs, the creator included).
    public static let maxCreateMembers = MembershipState.maxMembers - 1

    /// The ID an add or remove is about; nil for a create.
    public var target: MemberID? {
        switch kind {
        case .create: return nil
        case .add(let id), .remove(let id): return id
        }
    }

    /// Seqs start at 1 (§6.1), and a create names every initial member once and not its creator
    /// (the creator is implied; a repeated ID would make the §4.2 chain ambiguous).
    public var isWellFormed: Bool {
        guard id.seq >= 1 else { return false }
        guard case .create(let members) = kind else { return true }
        guard members.count <= Self.maxCreateMembers else { return false }
        var seen = Set<MemberID>(minimumCapacity: members.count + 1)
        seen.insert(id.sender)
        for member in members where !seen.insert(member).inserted { return false }
        return true
    }

    static let createTag: UInt8 = 0
    static let addTag: UInt8 = 1
    static let removeTag: UInt8 = 2

    /// `id`, a tag byte (0 create, 1 add, 2 remove), then a count and the IDs (create) or one ID.
    public func encode(to writer: inout WireWriter) {
        id.encode(to: &writer)
        switch kind {
        case .create(let members):
            writer.writeUInt8(Self.createTag)
            writer.writeArray(members)
        case .add(let member):
            writer.writeUInt8(Self.addTag)
            member.encode(to: &writer)
        case .remove(let member):
            writer.writeUInt8(Self.removeTag)
            member.encode(to: &writer)
        }
    }

    public static func decode(from reader: inout WireReader) throws(WireError) -> MembershipOperation {
        let id = try OperationID.decode(from: &reader)
        let kind: MembershipOperationKind
        switch try reader.readUInt8() {
        case createTag:
            kind = .create(members: try reader.readArray(MemberID.self, field: "create.members", limit: maxCreateMembers))
        case addTag:
            kind = .add(try MemberID.decode(from: &reader))
        case removeTag:
            kind = .remove(try MemberID.decode(from: &reader))
        case let tag:
            throw .unknownTag(field: "membership operation", tag: tag)
        }
        let op = MembershipOperation(id: id, kind: kind)
        guard op.isWellFormed else { throw .invalidValue(field: "membership operation") }
        return op
    }
}

/// Why a membership operation or acknowledgment cannot be added to a history.
public enum MembershipError: Error, Equatable, Sendable {
    /// The operation is already in the history.
    case duplicateOperation(OperationID)
    /// An add or remove before any create.
    case noCreate
    /// A create in a history that already has one.
    case secondCreate(OperationID)
    /// An acknowledgment or welcome names an operation the history does not hold.
    case unknownOperation(OperationID)
    /// A create that lists its creator or an ID twice, or has seq 0.
    case invalidCreate(OperationID)
    /// An acknowledgment or welcome by an ID that appears in no operation: a stranger's knowledge
    /// never orders anything, and storing it would let strangers grow the state.
    case unknownParticipant(MemberID)
    /// Seq 0, or knowledge of the creator below the create's seq (that would put an operation
    /// before the create, which §4.2 requires to be minimal).
    case invalidSequenceNumber(UInt64)
    /// `recordWelcome` named an operation that is not an add of that member.
    case invalidWelcome(OperationID)
    /// A merged state holds a different operation under an ID we know, or another group's create.
    case conflictingOperation(OperationID)
    /// The history would exceed ``MembershipState/maxOperations`` or ``MembershipState/maxMembers``
    /// (the limits its encoding accepts).
    case limitExceeded
}
