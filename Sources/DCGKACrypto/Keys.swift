public import DCGKAEncoding
internal import Crypto

/// A public key of the suite's PKE (an X25519 key in suite 1).
public struct PKEPublicKey: Hashable, Sendable, WireCodable {
    public let raw: Bytes32
    public init(raw: Bytes32) { self.raw = raw }
    public var bytes: [UInt8] { raw.bytes }
    public func encode(to writer: inout WireWriter) { raw.encode(to: &writer) }
    public static func decode(from reader: inout WireReader) throws(WireError) -> PKEPublicKey {
        PKEPublicKey(raw: try Bytes32.decode(from: &reader))
    }
}

/// A secret key of the suite's PKE. Holds the parsed key so that decryption does not have to
/// recompute the public key; equality is constant-time over the secret bytes.
public struct PKESecretKey: Sendable, Equatable, WireCodable {
    let key: Curve25519.KeyAgreement.PrivateKey
    /// The matching public key.
    public let publicKey: PKEPublicKey

    init(key: Curve25519.KeyAgreement.PrivateKey) {
        self.key = key
        self.publicKey = PKEPublicKey(raw: Bytes32(key.publicKey.rawRepresentation)!)
    }

    /// A key from 32 secret bytes (X25519 clamps them).
    public init(secretBytes: Bytes32) {
        self.init(key: try! Curve25519.KeyAgreement.PrivateKey(rawRepresentation: secretBytes.bytes))
    }

    /// A fresh key pair from the injected generator.
    public static func generate<R: RandomNumberGenerator>(using rng: inout R) -> PKESecretKey {
        PKESecretKey(secretBytes: rng.bytes32())
    }

    var secretBytes: [UInt8] { Array(key.rawRepresentation) }

    /// The 32 secret bytes, exactly what ``encode(to:)`` writes (the simulator scans seized states for them).
    public var secretBytes32: Bytes32 { Bytes32(key.rawRepresentation)! }

    public static func == (lhs: PKESecretKey, rhs: PKESecretKey) -> Bool {
        ConstantTime.equal(lhs.secretBytes, rhs.secretBytes)
    }

    public func encode(to writer: inout WireWriter) { writer.writeFixed(secretBytes) }

    public static func decode(from reader: inout WireReader) throws(WireError) -> PKESecretKey {
        PKESecretKey(secretBytes: try reader.read(Bytes32.self))
    }
}

/// A device's Ed25519 identity key pair (§2.2). Its public half is the member's ``MemberID``.
public struct IdentityKey: Sendable, Equatable, WireCodable {
    let key: Curve25519.Signing.PrivateKey
    public let id: MemberID

    init(key: Curve25519.Signing.PrivateKey) {
        self.key = key
        self.id = MemberID(Bytes32(key.publicKey.rawRepresentation)!)
    }

    /// The key whose RFC 8032 seed is `seed`.
    public init(seed: Bytes32) {
        self.init(key: try! Curve25519.Signing.PrivateKey(rawRepresentation: seed.bytes))
    }

    public static func generate<R: RandomNumberGenerator>(using rng: inout R) -> IdentityKey {
        IdentityKey(seed: rng.bytes32())
    }

    /// Ed25519 signature over `message` (deterministic, RFC 8032).
    public func sign(_ message: [UInt8]) -> Signature {
        let signature = try! key.signature(for: message)
        return Signature(bytes: Array(signature))
    }

    public static func == (lhs: IdentityKey, rhs: IdentityKey) -> Bool {
        ConstantTime.equal(lhs.key.rawRepresentation, rhs.key.rawRepresentation)
    }

    public func encode(to writer: inout WireWriter) { writer.writeFixed(key.rawRepresentation) }

    public static func decode(from reader: inout WireReader) throws(WireError) -> IdentityKey {
        IdentityKey(seed: try reader.read(Bytes32.self))
    }
}

/// A 64-byte Ed25519 signature.
public struct Signature: Hashable, Sendable, WireCodable {
    public static let byteCount = 64
    public let bytes: [UInt8]

    public init(bytes: [UInt8]) {
        precondition(bytes.count == Signature.byteCount, "an Ed25519 signature has 64 bytes")
        self.bytes = bytes
    }

    public func encode(to writer: inout WireWriter) { writer.writeFixed(bytes) }

    public static func decode(from reader: inout WireReader) throws(WireError) -> Signature {
        Signature(bytes: try reader.readFixed(byteCount))
    }
}

extension MemberID {
    /// Checks an Ed25519 signature made by this identity.
    public func isValidSignature(_ signature: Signature, for message: [UInt8]) -> Bool {
        // BoringSSL accepts signatures under small-order keys (R = identity, S = 0 verifies for
        // any message under the identity point): such keys are refused here.
        guard !isSmallOrder, let key = try? Curve25519.Signing.PublicKey(rawRepresentation: bytes) else { return false }
        return key.isValidSignature(signature.bytes, for: message)
    }
}

extension PKESecretKey: RedactedDescription {}
extension IdentityKey: RedactedDescription {}
