import Crypto
import DCGKACrypto
import DCGKAEncoding
import DCGKATestSupport
import Testing
@testable import Link

/// Identities, keys and deterministic handshakes shared by the link tests.
enum LinkFixtures {
    static func identity(_ n: UInt8) -> IdentityKey { IdentityKey(seed: Bytes32(Array(repeating: n, count: 32))!) }
    static let alice = identity(1)
    static let bob = identity(2)
    static let carol = identity(3)

    /// X25519 u-coordinates of small order (libsodium's blocklist): every DH with them is zero.
    static let smallOrderX25519: [[UInt8]] = [
        [UInt8](repeating: 0, count: 32),
        [1] + [UInt8](repeating: 0, count: 31),
        hex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
        hex("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
        [0xec] + [UInt8](repeating: 0xff, count: 30) + [0x7f],
        [0xed] + [UInt8](repeating: 0xff, count: 30) + [0x7f],
        [0xee] + [UInt8](repeating: 0xff, count: 30) + [0x7f],
    ]

    static func noiseState(initiator: Bool, random: inout SeededRandom) -> NoiseXXHandshakeState {
        NoiseXXHandshakeState(
            initiator: initiator, prologue: [],
            localStatic: try! Curve25519.KeyAgreement.PrivateKey(rawRepresentation: random.bytes(32)),
            localEphemeral: try! Curve25519.KeyAgreement.PrivateKey(rawRepresentation: random.bytes(32)))
    }

    /// A fresh initiator whose keys follow from `seed` (the same seed gives the same messages).
    static func initiator(
        seed: UInt64, identity: IdentityKey = alice, expectedPeer: MemberID? = bob.id, payload: [UInt8] = []
    ) -> LinkHandshake {
        var random = SeededRandom(seed: seed)
        return try! LinkHandshake.initiator(identity: identity, expectedPeer: expectedPeer, payload: payload, random: &random)
    }

    /// A fresh responder whose keys follow from `seed`.
    static func responder(seed: UInt64, identity: IdentityKey = bob, payload: [UInt8] = []) -> LinkHandshake {
        var random = SeededRandom(seed: seed ^ 0x5EED_0000_0000)
        return try! LinkHandshake.responder(identity: identity, payload: payload, random: &random)
    }

    /// The three messages of an honest handshake between `initiator(seed:)` and `responder(seed:)`.
    static func honestMessages(seed: UInt64) throws -> (m1: [UInt8], m2: [UInt8], m3: [UInt8]) {
        var initiator = initiator(seed: seed)
        var responder = responder(seed: seed)
        let m1 = try initiator.write()
        try responder.read(m1)
        let m2 = try responder.write()
        try initiator.read(m2)
        let m3 = try initiator.write()
        try responder.read(m3)
        return (m1, m2, m3)
    }

    /// Runs a handshake to completion the way a host would, passing messages through `carry`
    /// (record framing, say), and returns both transports.
    static func connect(
        _ initiator: inout LinkHandshake, _ responder: inout LinkHandshake,
        carry: ([UInt8]) throws -> [UInt8] = { $0 }
    ) throws -> (initiator: LinkTransport, responder: LinkTransport) {
        var turns = 0
        while !(initiator.isComplete && responder.isComplete) {
            turns += 1
            #expect(turns <= 3)
            if initiator.action == .write {
                try responder.read(carry(try initiator.write()))
            } else {
                try initiator.read(carry(try responder.write()))
            }
        }
        return (try initiator.finish(), try responder.finish())
    }
}
