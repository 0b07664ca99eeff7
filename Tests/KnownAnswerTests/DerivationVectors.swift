import DCGKACrypto
import DCGKAEncoding
import DCGKATestSupport
import GroupMessaging
import KeyAgreement

// The derivations of PROTOCOL.md §5.2, §5.7 and §7, each computed by the code the protocol itself
// calls (`KeyDerivations`, `MessageRatchet`). Each vector type makes itself from its inputs; the
// check makes it again from the inputs stored in the file and compares every output field.

let suite = Suite1()

/// A vector that can be recomputed from the inputs it stores.
protocol DerivationVector: Codable {
    /// The description of its group in the file: spec section and exact formula.
    static var summary: String { get }
    /// The same inputs run through the code; nil when the file's inputs are malformed.
    func recomputed() -> Self?
}

/// §5.2 `member-secret(seed, ID) = HKDF(ikm: seed, salt: -, info: "DCGKA member" ‖ ID, length 32)`.
struct MemberSecretVector: DerivationVector {
    var seed: String
    var memberID: String
    var memberSecret: String

    static let summary = "PROTOCOL.md §5.2: memberSecret = HKDF-SHA256(ikm: seed, salt: empty, "
        + "info: \"DCGKA member\" || memberID (32 bytes), length 32)"

    init(seed: [UInt8], memberID: [UInt8]) {
        self.seed = hexString(seed)
        self.memberID = hexString(memberID)
        memberSecret = KeyDerivations.memberSecret(seed: Bytes32(seed)!, for: MemberID(bytes: memberID)!, suite: suite).hex
    }

    func recomputed() -> Self? {
        guard let seed = bytes(seed, count: 32), let id = bytes(memberID, count: 32) else { return nil }
        return Self(seed: seed, memberID: id)
    }
}

/// §5.2 update-ratchet, both halves of its output: a defect that swaps them fails two fields.
struct UpdateRatchetVector: DerivationVector {
    /// Absent: ε, which salts with 32 zero bytes.
    var state: String?
    var input: String
    var updateSecret: String
    var nextState: String

    static let summary = "PROTOCOL.md §5.2: out = HKDF-SHA256(ikm: input, salt: state (32 zero bytes when the "
        + "state is absent, i.e. epsilon), info: \"DCGKA ratchet\", length 64); updateSecret = out[0..<32], "
        + "nextState = out[32..<64]"

    init(state: [UInt8]?, input: [UInt8]) {
        self.state = state.map(hexString)
        self.input = hexString(input)
        let out = KeyDerivations.updateRatchet(state: state.map { Bytes32($0)! }, input: input, suite: suite)
        updateSecret = out.updateSecret.hex
        nextState = out.nextState.hex
    }

    func recomputed() -> Self? {
        guard let input = bytes(input) else { return nil }
        guard let state else { return Self(state: nil, input: input) }
        return bytes(state, count: 32).map { Self(state: $0, input: input) }
    }
}

/// §7: the epoch's first chain key from an update secret, then message steps 0, 1, 2, ….
struct MessageRatchetVector: DerivationVector {
    struct Step: Codable {
        var index: Int
        var chain: String
        var key: String
        var nonce: String
        var nextChain: String
    }

    var updateSecret: String
    var chain0: String
    var steps: [Step]

    static let summary = "PROTOCOL.md §7: chain0 = HKDF-SHA256(ikm: updateSecret, salt: empty, info: \"DCGKA message "
        + "chain\", length 32); for step i, out = HKDF-SHA256(ikm: chain_i, salt: empty, info: \"DCGKA message key\", "
        + "length 76); key = out[0..<32], nonce = out[32..<44], nextChain = chain_i+1 = out[44..<76]"

    init(updateSecret: [UInt8], steps count: Int) {
        self.updateSecret = hexString(updateSecret)
        var chain = MessageRatchet.initialChain(updateSecret: Bytes32(updateSecret)!, suite: suite)
        chain0 = chain.hex
        steps = (0..<count).map { index in
            let (key, next) = MessageRatchet.step(chain, suite: suite)
            defer { chain = next }
            return Step(index: index, chain: chain.hex, key: key.key.hex, nonce: hexString(key.nonce), nextChain: next.hex)
        }
    }

    func recomputed() -> Self? {
        bytes(updateSecret, count: 32).map { Self(updateSecret: $0, steps: steps.count) }
    }
}

/// §5.7 rule 2.
struct SeedConfirmationVector: DerivationVector {
    var seed: String
    var confirmation: String

    static let summary = "PROTOCOL.md §5.7 rule 2: confirmation = HKDF-SHA256(ikm: seed, salt: empty, "
        + "info: \"DCGKA seed confirm\", length 32)"

    init(seed: [UInt8]) {
        self.seed = hexString(seed)
        confirmation = KeyDerivations.seedConfirmation(seed: Bytes32(seed)!, suite: suite).hex
    }

    func recomputed() -> Self? { bytes(seed, count: 32).map { Self(seed: $0) } }
}

/// §5.7 rule 3.
struct EpochConfirmationVector: DerivationVector {
    var updateSecret: String
    var confirmation: String

    static let summary = "PROTOCOL.md §5.7 rule 3: confirmation = HKDF-SHA256(ikm: updateSecret, salt: empty, "
        + "info: \"DCGKA epoch confirm\", length 16)"

    init(updateSecret: [UInt8]) {
        self.updateSecret = hexString(updateSecret)
        confirmation = hexString(KeyDerivations.epochConfirmation(updateSecret: Bytes32(updateSecret)!, suite: suite))
    }

    func recomputed() -> Self? { bytes(updateSecret, count: 32).map { Self(updateSecret: $0) } }
}

extension VectorGroup where V: DerivationVector {
    init(_ vectors: [V]) { self.init(description: V.summary, vectors: vectors) }
}

// MARK: - Generating and checking

/// Fixed inputs, disjoint runs of bytes so that a vector shows which input went where:
/// seeds 00…1f, member IDs 20…3f, ratchet states 40…5f, ratchet inputs 60…7f, update secrets 80…9f.
func generatedDerivationVectors() -> (
    VectorGroup<MemberSecretVector>, VectorGroup<UpdateRatchetVector>, VectorGroup<MessageRatchetVector>,
    VectorGroup<SeedConfirmationVector>, VectorGroup<EpochConfirmationVector>
) {
    let seed = run(from: 0x00), state = run(from: 0x40), secret = run(from: 0x80)
    return (
        VectorGroup([
            MemberSecretVector(seed: seed, memberID: run(from: 0x20)),
            MemberSecretVector(seed: seed, memberID: [UInt8](repeating: 0xff, count: 32)),
        ]),
        VectorGroup([
            UpdateRatchetVector(state: nil, input: run(from: 0x60)),
            UpdateRatchetVector(state: state, input: run(from: 0x60)),
            UpdateRatchetVector(state: state, input: KeyDerivations.welcomeInput),
            UpdateRatchetVector(state: state, input: KeyDerivations.addInput),
        ]),
        VectorGroup([MessageRatchetVector(updateSecret: secret, steps: 3)]),
        VectorGroup([SeedConfirmationVector(seed: seed), SeedConfirmationVector(seed: run(from: 0x20))]),
        VectorGroup([EpochConfirmationVector(updateSecret: secret), EpochConfirmationVector(updateSecret: run(from: 0x20))])
    )
}

/// Recomputes every derivation vector of the file from its stored inputs with the real code; one
/// line per output field that differs (empty when all match).
func derivationVectorMismatches() -> [String] {
    let file: VectorFile, raw: [String: Any]
    do { (file, raw) = try VectorFile.load() } catch { return ["cannot read \(VectorFile.url.path): \(error)"] }
    var out = file.version == VectorFile.currentVersion ? [] : ["version: the file has \(file.version), the code writes \(VectorFile.currentVersion)"]
    out += mismatches("memberSecret", file.memberSecret, raw)
    out += mismatches("updateRatchet", file.updateRatchet, raw)
    out += mismatches("messageRatchet", file.messageRatchet, raw)
    out += mismatches("seedConfirmation", file.seedConfirmation, raw)
    out += mismatches("epochConfirmation", file.epochConfirmation, raw)
    return out
}

private func mismatches<V: DerivationVector>(_ name: String, _ group: VectorGroup<V>, _ raw: [String: Any]) -> [String] {
    var malformed: [String] = []
    let recomputed = group.vectors.enumerated().map { index, vector in
        if let again = vector.recomputed() { return again }
        malformed.append("\(name).vectors[\(index)]: an input is not lowercase hex of the right length")
        return vector
    }
    return malformed + differences(name, file: raw[name], code: jsonTree(VectorGroup(recomputed)))
}
