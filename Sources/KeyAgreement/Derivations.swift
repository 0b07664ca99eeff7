@_spi(PlantedDefects) public import DCGKAEncoding
public import DCGKACrypto

/// The key derivations of PROTOCOL.md §5.2 and §5.7 as pure functions, so that the protocol,
/// the known-answer vectors and the simulator's key-recovery attacker all run the same code.
public enum KeyDerivations {
    public static let memberLabel: [UInt8] = Array("DCGKA member".utf8)
    public static let ratchetLabel: [UInt8] = Array("DCGKA ratchet".utf8)
    public static let seedConfirmLabel: [UInt8] = Array("DCGKA seed confirm".utf8)
    public static let epochConfirmLabel: [UInt8] = Array("DCGKA epoch confirm".utf8)
    public static let groupLabel: [UInt8] = Array("DCGKA group".utf8)
    public static let viewLabel: [UInt8] = Array("DCGKA view".utf8)
    /// The constant ratchet inputs of §5.3.
    public static let welcomeInput: [UInt8] = Array("welcome".utf8)
    public static let addInput: [UInt8] = Array("add".utf8)

    /// The group ID of §6.1: `SHA-256("DCGKA group" ‖ creator ‖ nonce ‖ SHA-256(list))`, where `list`
    /// is the canonical encoding (§8) of the create's member list, the creator first and then the
    /// others sorted by ID: `varint count ‖ 32-byte IDs`. The creator signs the create, so nobody
    /// else can publish a create for the same group ID; `members` may contain the creator (it is
    /// moved to the front) and is deduplicated by the caller's validation, not here.
    public static func groupID(creator: MemberID, nonce: Bytes32, members: [MemberID], suite: any CipherSuite) -> GroupID {
        let others = members.filter { $0 != creator }.sorted()
        var list = WireWriter(capacity: 10 + 32 * (others.count + 1))
        list.writeVarint(others.count + 1)
        creator.encode(to: &list)
        for id in others { id.encode(to: &list) }
        let listHash = suite.hash(list.bytes)
        return GroupID(suite.hash(groupLabel + creator.bytes + nonce.bytes + listHash.bytes))
    }

    /// The view hash of §5.6 that every control envelope carries: `SHA-256("DCGKA view" ‖ list)`
    /// with `list = varint count ‖ the member IDs sorted` (§8), of the sender's member view at that
    /// envelope. Every receiver compares it with the view it computes for the sender there, so a
    /// welcome whose history differs from what the members hold shows at the first honest control
    /// envelope that the difference touches (PROTOCOL-NOTES.md, "View hashes").
    public static func viewHash(of members: Set<MemberID>, suite: any CipherSuite) -> Bytes32 {
        var list = WireWriter(capacity: viewLabel.count + 10 + 32 * members.count)
        list.writeFixed(viewLabel)
        list.writeVarint(members.count)
        for id in members.sorted() { id.encode(to: &list) }
        return suite.hash(list.bytes)
    }

    /// member-secret(seed, ID) = HKDF(ikm: seed, salt: -, info: "DCGKA member" ‖ ID, length 32).
    public static func memberSecret(seed: Bytes32, for id: MemberID, suite: any CipherSuite) -> Bytes32 {
        memberSecret(prk: memberSecretKey(seed: seed, suite: suite), for: id, suite: suite)
    }

    /// The HKDF extract of a seed: it does not depend on the member, so it is done once per seed.
    public static func memberSecretKey(seed: Bytes32, suite: any CipherSuite) -> [UInt8] {
        suite.kdfExtract(ikm: seed.bytes, salt: [])
    }

    /// The expand step of ``memberSecret(seed:for:suite:)`` from ``memberSecretKey(seed:suite:)``.
    public static func memberSecret(prk: [UInt8], for id: MemberID, suite: any CipherSuite) -> Bytes32 {
        Bytes32(suite.kdfExpand(prk: prk, info: memberLabel + id.bytes, length: 32))!
    }

    /// update-ratchet: `out = HKDF(ikm: input, salt: state (32 zero bytes when ε), info: "DCGKA ratchet", 64)`;
    /// the update secret is `out[0..<32]`, the new ratchet state `out[32..<64]`.
    public static func updateRatchet(
        state: Bytes32?, input: [UInt8], suite: any CipherSuite
    ) -> (updateSecret: Bytes32, nextState: Bytes32) {
        let out = suite.kdf(ikm: input, salt: (state ?? .zero).bytes, info: ratchetLabel, length: 64)
        #if DEBUG
        if PlantedDefects.isActive(.swapRatchetHalves) { return (Bytes32(out[32..<64])!, Bytes32(out[0..<32])!) }
        #endif
        return (Bytes32(out[0..<32])!, Bytes32(out[32..<64])!)
    }

    /// Seed confirmation (§5.7 rule 2): `HKDF(ikm: seed, info: "DCGKA seed confirm", length 32)`.
    public static func seedConfirmation(seed: Bytes32, suite: any CipherSuite) -> Bytes32 {
        Bytes32(suite.kdf(ikm: seed.bytes, salt: [], info: seedConfirmLabel, length: 32))!
    }

    /// Epoch confirmation (§5.7 rule 3): `HKDF(ikm: I_X, info: "DCGKA epoch confirm", length 16)`.
    public static func epochConfirmation(updateSecret: Bytes32, suite: any CipherSuite) -> [UInt8] {
        suite.kdf(ikm: updateSecret.bytes, salt: [], info: epochConfirmLabel, length: 16)
    }
}
