import CausalBroadcast
import DCGKACrypto
import DCGKAEncoding

/// A member that signs its own chain of envelopes in one group.
struct Sender {
    let key: IdentityKey
    let groupID: GroupID
    var seq: UInt64 = 0
    var prev: Bytes32?

    init(seed: UInt64, groupID: GroupID) {
        var rng = SeededRandom(seed: seed)
        key = IdentityKey.generate(using: &rng)
        self.groupID = groupID
    }

    var id: MemberID { key.id }

    mutating func send(_ kind: EnvelopeKind, acked: EnvelopeReference? = nil, payload: [UInt8] = []) -> Envelope {
        let envelope = make(kind, seq: seq + 1, prev: prev, acked: acked, payload: payload)
        seq += 1
        prev = envelope.hash
        return envelope
    }

    /// An envelope at an arbitrary position, without advancing the chain (for equivocation).
    func make(_ kind: EnvelopeKind, seq: UInt64, prev: Bytes32?, acked: EnvelopeReference? = nil, payload: [UInt8] = []) -> Envelope {
        Envelope.sign(
            identity: key, suite: .suite1, groupID: groupID, seq: seq, prev: prev, kind: kind,
            acked: kind.isAcknowledgment ? (acked ?? .nowhere) : nil,
            application: kind == .application ? ApplicationFields(epoch: 1, index: seq, hour: 500_000) : nil, payload: payload)
    }
}

func makeGroupID(_ seed: UInt64) -> GroupID {
    var rng = SeededRandom(seed: seed)
    return GroupID(rng.bytes32())
}

let everyoneKnown: @Sendable (MemberID) -> Bool = { _ in true }

extension BroadcastState {
    /// Hands out and marks delivered everything deliverable; returns it in delivery order.
    mutating func drain() -> [Envelope] {
        var out: [Envelope] = []
        while let envelope = nextDeliverable() {
            let marked = markDelivered(envelope)
            precondition(marked)
            out.append(envelope)
        }
        return out
    }
}

extension RandomNumberGenerator {
    mutating func shuffled<T>(_ values: [T]) -> [T] {
        var copy = values
        copy.shuffle(using: &self)
        return copy
    }
}

extension EnvelopeReference {
    /// An acknowledged envelope nobody has.
    static let nowhere = EnvelopeReference(sender: MemberID(.zero), seq: 1, hash: .zero)
}
