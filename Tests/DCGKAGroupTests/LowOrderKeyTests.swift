@_spi(Simulation) import DCGKAGroup
import CausalBroadcast
import Crypto
import DCGKACrypto
import DCGKAEncoding
import KeyAgreement
import TwoPartyMessaging
import Testing

/// Issue 8, item 6: keys of small order are refused when they arrive, never later in the middle
/// of an operation, and one recipient that cannot be reached never blocks an operation for the rest.
@Suite struct LowOrderKeyTests {
    static func hex(_ string: String) -> [UInt8] {
        stride(from: 0, to: string.count, by: 2).map {
            let start = string.index(string.startIndex, offsetBy: $0)
            return UInt8(string[start..<string.index(start, offsetBy: 2)], radix: 16)!
        }
    }

    static let lowOrderX25519 = [
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0100000000000000000000000000000000000000000000000000000000000000",
        "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
        "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    ].map { PKEPublicKey(raw: Bytes32(hex($0))!) }

    @Test("every low-order X25519 key is recognised (with or without the ignored top bit), and gives an all-zero secret")
    func lowOrderX25519() throws {
        var rng = SeededRandom(seed: 5)
        for key in Self.lowOrderX25519 {
            #expect(key.isLowOrder)
            var high = key.bytes
            high[31] |= 0x80
            #expect(PKEPublicKey(raw: Bytes32(high)!).isLowOrder)
            #expect(throws: CryptoError.allZeroSharedSecret) {
                _ = try Suite1().pkeSeal(to: key, info: [], aad: [], plaintext: [1], using: &rng)
            }
        }
        for _ in 0..<50 { #expect(!PKESecretKey.generate(using: &rng).publicKey.isLowOrder) }
    }

    /// R = identity point, S = 0: valid under the identity public key for every message.
    static let identityPoint = hex("0100000000000000000000000000000000000000000000000000000000000000")
    static let forgedSignature = Signature(bytes: identityPoint + [UInt8](repeating: 0, count: 32))

    @Test("BoringSSL accepts a signature under the small-order identity key; MemberID refuses it")
    func smallOrderEd25519() throws {
        let message = Array("any message at all".utf8)
        let boring = try Curve25519.Signing.PublicKey(rawRepresentation: Self.identityPoint)
        // What the library does by itself (documented in PROTOCOL-NOTES.md): it accepts.
        #expect(boring.isValidSignature(Self.forgedSignature.bytes, for: message))
        let id = MemberID(Bytes32(Self.identityPoint)!)
        #expect(id.isSmallOrder)
        #expect(!id.isValidSignature(Self.forgedSignature, for: message))
        var rng = SeededRandom(seed: 6)
        for _ in 0..<20 { #expect(!IdentityKey.generate(using: &rng).id.isSmallOrder) }
    }

    @Test("a bundle with a small-order identity or a low-order prekey is refused, typed")
    func bundles() throws {
        var rng = SeededRandom(seed: 7)
        let identity = IdentityKey.generate(using: &rng)
        let bad = KeyBundle(signing: Self.lowOrderX25519[2], notAfter: 2_000_000_000, with: identity)
        #expect(throws: KeyBundleError.lowOrderPrekey) { try bad.verify(now: 1_800_000_000) }
        let stranger = KeyBundle(
            suite: .suite1, identity: MemberID(Bytes32(Self.identityPoint)!), prekey: PKESecretKey.generate(using: &rng).publicKey,
            notAfter: 2_000_000_000, signature: Self.forgedSignature)
        #expect(throws: KeyBundleError.smallOrderIdentity) { try stranger.verify(now: 1_800_000_000) }
    }

    @Test("an add whose bundle has a low-order prekey fails, typed, at every member, and the bundle is not kept")
    func addWithLowOrderPrekey() throws {
        var net = try ConcurrencyScenarioTests.network(seed: 3, names: ["A", "B", "C", "D"], members: ["A", "B", "C"])
        // A malicious A adds D with a bundle whose prekey has small order (the honest API refuses).
        let d = net.people["D"]!.identity
        let bad = KeyBundle(signing: Self.lowOrderX25519[3], notAfter: TestNetwork.now + 86_400, with: d)
        let group = net.group("A")
        let (seq, prev) = group.broadcast.nextOwnPosition()
        let add = Envelope.sign(
            identity: net.people["A"]!.identity, suite: group.suite, groupID: group.groupID, seq: seq, prev: prev,
            kind: .add, acked: nil, payload: ControlBody(fields: .add(bad, EncodedWelcome(Welcome(
                history: group.keyAgreement.history,
                ratchetCiphertext: TwoPartyMessage(header: try TwoPartyHeader(wireBytes: [KeyOrigin.me.rawValue]), ciphertext: [0]),
                context: []))), directMessages: []).payload)
        for name in ["B", "C"] {
            let before = net.people[name]!.events.count
            net.deliver(add, to: name)
            let events = Array(net.people[name]!.events[before...])
            #expect(events == [.processingFailed(
                sender: net.id("A"), seq: seq, error: .protocolError(.invalidKeyBundle(d.id, .lowOrderPrekey)))], "\(name): \(events)")
            #expect(net.group(name).bundles[d.id] == nil)
            #expect(net.group(name).members == net.ids(["A", "B", "C"]))
        }
        net.problems.removeAll()  // the failures above are the expected outcome
    }

    @Test("a 2SM message that hands on a low-order key is refused and changes nothing")
    func twoPartyLowOrderNextKey() throws {
        var rng = SeededRandom(seed: 8)
        let alice = IdentityKey.generate(using: &rng), bob = IdentityKey.generate(using: &rng)
        var prekeys = PrekeyStore()
        let bundle = prekeys.generate(identity: bob, notAfter: 2_000_000_000, using: &rng)
        let binding = TwoPartyBinding(suite: .suite1, groupID: GroupID(rng.bytes32()))
        let header = try TwoPartyHeader(wireBytes: [KeyOrigin.other.rawValue, 0] + bundle.prekey.bytes)
        var plaintext = WireWriter()
        plaintext.writeLengthPrefixed([UInt8](repeating: 1, count: 32))
        plaintext.write(rng.bytes32())
        plaintext.writeVarint(UInt64(1))
        plaintext.write(Self.lowOrderX25519[2])
        let ciphertext = try Suite1().pkeSeal(
            to: bundle.prekey, info: binding.info(sender: alice.id, recipient: bob.id), aad: header.wireBytes,
            plaintext: plaintext.bytes, using: &rng)
        var state = TwoPartyState(peerPrekey: nil)
        let before = state
        #expect(throws: TwoPartyError.lowOrderKey) {
            _ = try state.receive(TwoPartyMessage(header: header, ciphertext: ciphertext), from: alice.id, to: bob.id, binding: binding, prekeys: prekeys)
        }
        #expect(state == before)
    }

    @Test("a recipient without a usable key is left out of my update; the others get the seed")
    func unreachableRecipient() throws {
        let net = try ConcurrencyScenarioTests.network(seed: 4, names: ["A", "B", "C"], members: ["A", "B", "C"])
        // B has a channel with A (A's create reached it) but none with C, and here no bundles at all.
        var state = net.group("B").keyAgreement
        var rng = SeededRandom(seed: 1)
        let seq = net.group("B").broadcast.nextOwnPosition().seq
        let output = try state.update(seq: seq, keys: KeyMaterial(prekeys: net.people["B"]!.prekeys, peerBundles: [:]), using: &rng)
        #expect(Set(output.unreachable.keys) == [net.id("C")])
        #expect(output.unreachable[net.id("C")] == .missingKeyBundle(net.id("C")))
        #expect(output.body.directMessages.count == 1, "A still gets the seed")
        #expect(output.updateSecret != nil)
    }
}
