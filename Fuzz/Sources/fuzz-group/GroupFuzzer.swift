import DCGKAEncoding
import DCGKACrypto
import CausalBroadcast
import KeyAgreement
import GroupMessaging
import DCGKAGroup
import FuzzSupport

// Target `group` (stateful): the three members A, B and C of the fixture group, from their states
// right after the create (before any acknowledgment arrived), driven by the input, one command per
// step (at most `maximumSteps`). The envelopes they can be handed are the fixture run's pool (every
// envelope after the create: acknowledgments, messages, B's update, A's add of D and D's welcome-ack,
// B's removal of C, ...) plus whatever they themselves produce during this input. Commands (first
// byte modulo 8):
//   0, 1, 2  deliver pool envelope `i` to member `m`, unchanged
//   3        deliver it with 1-4 bytes XOR-ed (signature now fails, or decoding does)
//   4        member `m` acts: sends a message, updates, removes a member, adds D, or sends with refresh
//   5        member `m` is persisted and restored (encode, decode, compare), and goes on restored
//   6        deliver raw bytes from the input as a canonical envelope (any group ID)
//   7        an insider: the sender of pool envelope `i` re-signs it with a mutated payload (and
//            maybe another kind), so the bytes get past the signature into the protocol layers
// Nothing is asserted about the outcome but: no crash, no hang; every envelope that decodes (and
// the control body or application ciphertext in it) re-encodes to its bytes; everything produced
// decodes and is validly signed; a failed local operation changes nothing; every state
// round-trips through its encoding after the input.

@_cdecl("fuzz_group_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    fuzzMain(argc, argv, seeds: seeds) { data, size in fuzz(data ?? emptyInput, size) }
}

let maximumSteps = 48
let maximumProduced = 64

/// Command byte for "deliver envelope i to member m".
func deliver(_ i: Int, to m: Int) -> [UInt8] { [0, UInt8(i), UInt8(m)] }

func seeds() -> [[UInt8]] {
    let fixtures = Fixtures.shared
    let pool = fixtures.pool
    var out: [[UInt8]] = []
    // The honest run, in order, to the members it went to.
    var honest: [UInt8] = [0]  // rng seed byte
    var step = 0
    for (i, envelope) in pool.enumerated() where step < maximumSteps {
        for m in 0..<3 where fixtures.people[m].identity.id != envelope.sender && step < maximumSteps {
            honest += deliver(i, to: m)
            step += 1
        }
    }
    out.append(honest)
    // The pool delivered backwards to B, then to A and C.
    var backwards: [UInt8] = [1]
    for i in (0..<min(pool.count, maximumSteps / 2)).reversed() { backwards += deliver(i, to: 1) }
    out.append(backwards)
    // Each member acting, then everything it made delivered (produced envelopes follow the pool).
    for m in 0..<3 {
        for action in 0..<5 {
            var seed: [UInt8] = [UInt8(m * 5 + action)]
            seed += deliver(0, to: (m + 1) % 3) + deliver(1, to: (m + 2) % 3)
            seed += [4, UInt8(m), UInt8(action), UInt8(m + 1)]
            seed += deliver(pool.count, to: (m + 1) % 3) + deliver(pool.count, to: (m + 2) % 3)
            seed += [5, UInt8(m)]
            out.append(seed)
        }
    }
    // Mutations, raw bytes and insiders.
    out.append([2, 3, 0, 1, 2, 0, 10, 0x40, 0, 40, 0x01])
    out.append([3, 7, 0, 1, 0, 3, 0, 12, 0xff, 7, 1, 2, 6, 0, 20, 0x80])
    out.append([4, 6, 0x40] + fixtures.pool[0].canonicalBytes.prefix(0x40))
    out.append([5, 5, 0, 5, 1, 5, 2])
    return out
}

struct Run {
    let fixtures = Fixtures.shared
    var groups: [Group]
    var prekeys: [PrekeyStore]
    var produced: [Envelope] = []
    var rng: SeededRandom

    init(seed: UInt8) {
        groups = [fixtures.a0, fixtures.b0, fixtures.c0]
        prekeys = fixtures.people.prefix(3).map(\.prekeys)
        rng = SeededRandom(seed: UInt64(seed))
    }

    var poolCount: Int { fixtures.pool.count + produced.count }

    func envelope(_ i: Int) -> Envelope {
        i < fixtures.pool.count ? fixtures.pool[i] : produced[i - fixtures.pool.count]
    }

    mutating func keep(_ envelopes: [Envelope]) {
        for envelope in envelopes where produced.count < maximumProduced {
            checkFresh(envelope)
            produced.append(envelope)
        }
    }

    /// An envelope the code just made: valid signature, both forms decode back to it.
    func checkFresh(_ envelope: Envelope) {
        require(envelope.hasValidSignature(), "a member produced an envelope with a bad signature")
        guard let wire = try? Envelope(wire: envelope.wireBytes, groupID: envelope.groupID),
              let canonical = try? Envelope(canonical: envelope.canonicalBytes)
        else { finding("a produced envelope does not decode") }
        require(wire.hash == envelope.hash && canonical.hash == envelope.hash, "a produced envelope decodes to another hash")
    }

    mutating func receive(_ envelope: Envelope, by m: Int) {
        let output = groups[m].receive(envelope, prekeys: prekeys[m], using: &rng)
        keep(output.envelopes)
    }

    /// Wire bytes, as a transport hands them over: decoded (must be canonical), then received.
    mutating func receive(wire bytes: [UInt8], by m: Int) {
        guard let envelope = try? Envelope(wire: bytes, groupID: groups[m].groupID) else { return }
        require(envelope.wireBytes == bytes, "a wire envelope re-encodes to other bytes: \(hexString(bytes))")
        // What the members decode from its payload must be canonical too.
        if envelope.kind == .application {
            if let payload = envelope.payload { decodeCanonical(ApplicationCiphertext.self, payload) }
        } else if let body = fixtures.controlBody(of: envelope) {
            require(body.payload == envelope.payload, "a control body re-encodes to other bytes: \(hexString(envelope.payload ?? []))")
        }
        receive(envelope, by: m)
    }

    mutating func act(_ m: Int, _ action: Int, _ argument: Int) {
        var group = groups[m]
        let before = group.wireBytes
        let people = fixtures.people
        let envelopes: [Envelope]?
        switch action {
        case 0: envelopes = (try? group.send([UInt8(argument)], now: Fixtures.now)).map { [$0] }
        case 1: envelopes = (try? group.update(prekeys: prekeys[m], now: Fixtures.now, using: &rng)).map { [$0] }
        case 2: envelopes = (try? group.remove(people[argument % 4].identity.id, prekeys: prekeys[m], now: Fixtures.now, using: &rng)).map { [$0] }
        case 3: envelopes = try? group.add(people[argument % 2 == 0 ? 3 : 2].bundle, prekeys: prekeys[m], now: Fixtures.now, using: &rng)
        case 4:
            // §5.7 recovery; refused (typed) unless a ratchet was lost.
            envelopes = (try? group.requestResync(using: &rng)).map { [$0] }
        default: envelopes = try? group.send([UInt8(argument), 1], prekeys: prekeys[m], now: Fixtures.now, using: &rng)
        }
        if let envelopes {
            groups[m] = group
            keep(envelopes)
        } else {
            // A local operation that throws leaves the group as it was.
            require(group.wireBytes == before, "a failed local operation changed the group")
        }
    }

    /// Persist and restore: what an application does between any two calls.
    mutating func restart(_ m: Int) {
        let bytes = groups[m].wireBytes
        let restored: Group
        do { restored = try Group(wireBytes: bytes) } catch {
            finding("member \(m)'s state does not decode: \(error)")
        }
        require(restored.wireBytes == bytes, "member \(m)'s restored state re-encodes to other bytes")
        require(restored == groups[m], "member \(m)'s restored state differs from the one encoded")
        groups[m] = restored
    }

    mutating func insider(_ i: Int, _ input: inout FuzzInput) {
        let original = envelope(i)
        guard let person = fixtures.person(original.sender) else { return }
        var payload = original.payload ?? []
        let edits = Int(input.byteOrZero() % 4)
        for _ in 0..<edits {
            let position = input.uint16()
            let value = input.byteOrZero()
            switch value % 4 {
            case 0 where !payload.isEmpty: payload[position % payload.count] ^= value | 1
            case 1: payload.insert(value, at: position % (payload.count + 1))
            case 2 where !payload.isEmpty: payload.remove(at: position % payload.count)
            default: payload = Array(payload.prefix(position % (payload.count + 1)))
            }
        }
        let kindByte = input.byteOrZero()
        let kind = kindByte < 200 ? original.kind : EnvelopeKind(rawValue: kindByte % 10)!
        let acked: EnvelopeReference? = kind.isAcknowledgment ? (original.acked ?? envelope(Int(kindByte) % poolCount).reference) : nil
        let application = kind == .application
            ? (original.application ?? ApplicationFields(epoch: UInt64(kindByte), index: 0, hour: Fixtures.now / 3600)) : nil
        var forged = Envelope.sign(
            identity: person.identity, suite: original.suite, groupID: original.groupID, seq: original.seq,
            prev: original.prev, kind: kind, acked: acked, application: application, payload: payload)
        // Pruned, as a holder past its retention would pass it on (§6.1).
        if kindByte & 1 == 1 { forged = forged.pruned() }
        receive(wire: forged.wireBytes, by: Int(input.byteOrZero()) % 3)
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    var run = Run(seed: input.byteOrZero())
    var steps = 0
    while steps < maximumSteps, let command = input.byte() {
        steps += 1
        switch command % 8 {
        case 0, 1, 2, 3:
            let i = Int(input.byteOrZero()) % run.poolCount
            let m = Int(input.byteOrZero()) % 3
            var bytes = run.envelope(i).wireBytes
            if command % 8 == 3 {
                for _ in 0...Int(input.byteOrZero() % 4) {
                    let position = input.uint16() % bytes.count
                    bytes[position] ^= input.byteOrZero() | 1
                }
            }
            run.receive(wire: bytes, by: m)
        case 4:
            let m = Int(input.byteOrZero()) % 3
            let action = Int(input.byteOrZero()) % 6
            run.act(m, action, Int(input.byteOrZero()))
        case 5:
            run.restart(Int(input.byteOrZero()) % 3)
        case 6:
            let m = Int(input.byteOrZero()) % 3
            let bytes = input.take(Int(input.uint16() % 4096))
            if let envelope = try? Envelope(canonical: bytes) {
                require(envelope.canonicalBytes == bytes, "a canonical envelope re-encodes to other bytes")
                run.receive(envelope, by: m)
            }
        default:
            let i = Int(input.byteOrZero()) % run.poolCount
            run.insider(i, &input)
        }
    }
    for m in 0..<3 { run.restart(m) }
    return 0
}
