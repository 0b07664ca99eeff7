import DCGKAEncoding
import Membership
import Testing

/// Deterministic PRNG (SplitMix64) so every random test is reproducible from its seed.
struct SplitMix64 {
    var state: UInt64
    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    mutating func percent(_ p: Int) -> Bool { below(100) < p }
    mutating func pick<T>(_ values: [T]) -> T { values[below(values.count)] }
}

/// Test member `n`. The first byte is scrambled so sorted order differs from creation order,
/// which exercises the re-ranking of the encoder.
func member(_ n: Int) -> MemberID {
    var bytes = [UInt8](repeating: 0, count: 32)
    bytes[0] = UInt8(truncatingIfNeeded: n &* 89 &+ 7)
    bytes[30] = UInt8(truncatingIfNeeded: n >> 8)
    bytes[31] = UInt8(truncatingIfNeeded: n)
    return MemberID(bytes: bytes)!
}

let alice = member(1), bob = member(2), carol = member(3), dave = member(4), erin = member(5)

extension MembershipState {
    /// Applies an operation sent by `sender` in its envelope `seq` and returns its ID.
    @discardableResult
    mutating func send(_ sender: MemberID, _ seq: UInt64, _ kind: MembershipOperationKind) throws -> OperationID {
        let id = OperationID(sender: sender, seq: seq)
        try apply(MembershipOperation(id: id, kind: kind))
        return id
    }

    mutating func ack(_ op: OperationID, by member: MemberID, _ seq: UInt64) throws {
        try recordAcknowledgment(of: op, by: member, atSeq: seq)
    }

    /// `members()`, checked against the oracle.
    func checkedMembers() -> Set<MemberID> {
        let fast = members()
        #expect(fast == MembershipOracle.members(of: self), "incremental members() differs from the oracle")
        return fast
    }

    /// `members(asSeenBy:atSeq:)`, checked against the oracle.
    func checkedView(_ sender: MemberID, _ seq: UInt64) -> Set<MemberID> {
        let fast = members(asSeenBy: sender, atSeq: seq)
        #expect(fast == MembershipOracle.members(of: self, asSeenBy: sender, atSeq: seq), "view differs from the oracle")
        return fast
    }
}
