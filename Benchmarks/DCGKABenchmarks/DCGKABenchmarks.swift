// Micro-benchmarks: `swift package benchmark` (ordo-one/benchmark). See BENCHMARKS.md.
//
// Each benchmark's body does one call per scaled iteration on inputs prepared outside the timed
// part (`setup`). Allocation counts come from the malloc interposer (trait MallocInterposer).
import Benchmark
import Benchmarking
import CausalBroadcast
import DCGKACrypto
import DCGKAEncoding
import DCGKAGroup
import Membership
import TwoPartyMessaging

/// Inputs shared by the benchmarks, built once.
final class Fixtures: @unchecked Sendable {
    static let shared = Fixtures()

    var rng = SeededRandom(seed: 42)
    let identity: IdentityKey
    let message: [UInt8]
    let signature: Signature
    let recipientKey: PKESecretKey
    let ephemeral: PKESecretKey
    let hpkeInfo: [UInt8]
    let hpkePlaintext: [UInt8]
    let hpkeCiphertext: [UInt8]

    // 2SM between two members of a group.
    let binding: TwoPartyBinding
    let alice: IdentityKey
    let bob: IdentityKey
    let bobPrekeys: PrekeyStore
    let aliceToBob: TwoPartyState
    let bobFresh: TwoPartyState
    let firstMessage: TwoPartyMessage

    // A settled group of 128 (its create and every ack delivered).
    let group128: BenchFixture
    let createWire: [UInt8]
    let ackWire: [UInt8]
    let ack: Envelope
    let create: Envelope
    let messageEnvelope: Envelope
    let messageWire: [UInt8]

    init() {
        identity = IdentityKey.generate(using: &rng)
        message = rng.bytes(200)
        signature = identity.sign(message)
        recipientKey = PKESecretKey.generate(using: &rng)
        ephemeral = PKESecretKey.generate(using: &rng)
        hpkeInfo = rng.bytes(106)
        hpkePlaintext = rng.bytes(90)
        hpkeCiphertext = try! HPKEBase.seal(
            to: recipientKey.publicKey, info: hpkeInfo, aad: [0], plaintext: hpkePlaintext, ephemeral: ephemeral)

        binding = TwoPartyBinding(suite: .suite1, groupID: GroupID(rng.bytes32()))
        alice = IdentityKey.generate(using: &rng)
        bob = IdentityKey.generate(using: &rng)
        var prekeys = PrekeyStore()
        let bundle = prekeys.generate(identity: bob, notAfter: BenchFixture.now, using: &rng)
        bobPrekeys = prekeys
        var sender = TwoPartyState(peerPrekey: bundle.prekey)
        firstMessage = try! sender.send(rng.bytes(32), from: alice.id, to: bob.id, binding: binding, using: &rng)
        aliceToBob = sender
        bobFresh = TwoPartyState(peerPrekey: nil)

        group128 = try! BenchFixture(groupSize: 128, seed: 3)
        createWire = group128.setupWires[0]
        ackWire = group128.setupWires[1]
        create = try! Envelope(wire: createWire, groupID: group128.groupID)
        ack = try! Envelope(wire: ackWire, groupID: group128.groupID)
        var sender128 = group128.groups[0]
        messageEnvelope = try! sender128.send(Array("0123456789ABCDEF0123456789ABCDEF".utf8), now: BenchFixture.now)
        messageWire = messageEnvelope.wireBytes
    }
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .mallocCountTotal, .mallocBytesCount, .throughput],
        warmupIterations: 3,
        maxDuration: .seconds(2),
        maxIterations: 2_000)
    let f = Fixtures.shared

    // MARK: Primitives (suite 1 through DCGKACrypto)

    Benchmark("Ed25519 sign (200 B)") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(f.identity.sign(f.message)) }
    }
    Benchmark("Ed25519 verify (200 B)") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(f.identity.id.isValidSignature(f.signature, for: f.message)) }
    }
    Benchmark("X25519 keygen") { benchmark in
        var rng = SeededRandom(seed: 1)
        for _ in benchmark.scaledIterations { blackHole(PKESecretKey.generate(using: &rng)) }
    }
    Benchmark("HPKE seal (90 B, given ephemeral)") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(try HPKEBase.seal(
                to: f.recipientKey.publicKey, info: f.hpkeInfo, aad: [0], plaintext: f.hpkePlaintext, ephemeral: f.ephemeral))
        }
    }
    Benchmark("HPKE open (90 B)") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(try HPKEBase.open(with: f.recipientKey, info: f.hpkeInfo, aad: [0], ciphertext: f.hpkeCiphertext))
        }
    }
    Benchmark("HKDF-SHA256 (32 B out)") { benchmark in
        let suite = Suite1()
        for _ in benchmark.scaledIterations {
            blackHole(suite.kdf(ikm: f.hpkePlaintext, salt: f.hpkeInfo, info: f.message, length: 32))
        }
    }

    // MARK: 2SM (§3)

    Benchmark("2SM send (existing channel)") { benchmark in
        var rng = SeededRandom(seed: 2)
        let payload = rng.bytes(32)
        for _ in benchmark.scaledIterations {
            var state = f.aliceToBob
            blackHole(try state.send(payload, from: f.alice.id, to: f.bob.id, binding: f.binding, using: &rng))
        }
    }
    Benchmark("2SM receive (first message, prekey)") { benchmark in
        for _ in benchmark.scaledIterations {
            var state = f.bobFresh
            blackHole(try state.receive(f.firstMessage, from: f.alice.id, to: f.bob.id, binding: f.binding, prekeys: f.bobPrekeys))
        }
    }

    // MARK: Membership queries (§4), a settled group of 128

    Benchmark("membership members() n=128") { benchmark in
        let history = f.group128.groups[5].keyAgreement.history
        for _ in benchmark.scaledIterations { blackHole(history.members()) }
    }
    Benchmark("membership members(asSeenBy:atSeq:) n=128") { benchmark in
        let history = f.group128.groups[5].keyAgreement.history
        let member = f.group128.groups[7].me
        for _ in benchmark.scaledIterations { blackHole(history.members(asSeenBy: member, atSeq: 1)) }
    }

    // MARK: Envelopes (§6)

    Benchmark("envelope decode ack (wire)") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(try Envelope(wire: f.ackWire, groupID: f.group128.groupID)) }
    }
    Benchmark("envelope encode ack (wire)") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(f.ack.wireBytes) }
    }
    Benchmark("envelope verify ack") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(f.ack.hasValidSignature()) }
    }
    Benchmark("envelope decode create n=128 (\(f.createWire.count) B)") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(try Envelope(wire: f.createWire, groupID: f.group128.groupID)) }
    }
    Benchmark("envelope verify create n=128") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(f.create.hasValidSignature()) }
    }

    // MARK: Application messages (§7) through the group API, n=128

    Benchmark("message send 32 B (encrypt + sign) n=128") { benchmark in
        let plaintext = Array("0123456789ABCDEF0123456789ABCDEF".utf8)
        for _ in benchmark.scaledIterations {
            var group = f.group128.groups[0]
            blackHole(try group.send(plaintext, now: BenchFixture.now))
        }
    }
    Benchmark("message receive 32 B (decode + verify + decrypt) n=128") { benchmark in
        var rng = SeededRandom(seed: 3)
        for _ in benchmark.scaledIterations {
            var group = f.group128.groups[9]
            let envelope = try Envelope(wire: f.messageWire, groupID: f.group128.groupID)
            blackHole(group.receive(envelope, prekeys: f.group128.prekeys[9], using: &rng))
        }
    }

    // MARK: Group operations, n=128 (generation only; the state copy is part of the cost)

    Benchmark("group update generation n=128", configuration: .init(maxDuration: .seconds(3), maxIterations: 50)) { benchmark in
        var rng = SeededRandom(seed: 4)
        for _ in benchmark.scaledIterations {
            var group = f.group128.groups[0]
            blackHole(try group.update(prekeys: f.group128.prekeys[0], using: &rng))
        }
    }
    Benchmark("group receive ack n=128") { benchmark in
        var rng = SeededRandom(seed: 5)
        // Member 0 (the creator) before processing member 1's ack is not kept; member 5 has processed
        // every ack, so it drops the duplicate after decoding: this measures decode + dedupe.
        for _ in benchmark.scaledIterations {
            var group = f.group128.groups[5]
            let envelope = try Envelope(wire: f.ackWire, groupID: f.group128.groupID)
            blackHole(group.receive(envelope, prekeys: f.group128.prekeys[5], using: &rng))
        }
    }
}
