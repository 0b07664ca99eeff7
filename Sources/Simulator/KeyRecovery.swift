internal import DCGKAEncoding
internal import DCGKACrypto
internal import CausalBroadcast
@_spi(Simulation) internal import DCGKAGroup
internal import GroupMessaging
@_spi(Simulation) internal import KeyAgreement
internal import TwoPartyMessaging

/// Every update-ratchet step the members took (§5.2), deduplicated: the shape of the derivations,
/// which an attacker learns from the public envelopes and the protocol, recorded so that the
/// attacker below can walk it. It is given no value it cannot compute: a step fires only when the
/// attacker already knows its input state and its input, and then the attacker runs the HKDF itself.
struct DerivationGraph {
    private(set) var steps: [RatchetStep] = []
    private var seen: Set<RatchetStep> = []
    private(set) var bySalt: [Bytes32: [Int]] = [:]
    private(set) var byInput: [Bytes32: [Int]] = [:]
    /// Steps from ε (an absent ratchet state: 32 zero bytes as salt).
    private(set) var fromEpsilon: [Int] = []

    mutating func add(_ step: RatchetStep) {
        guard seen.insert(step).inserted else { return }
        let index = steps.count
        steps.append(step)
        if let salt = step.state { bySalt[salt, default: []].append(index) } else { fromEpsilon.append(index) }
        if let input = Bytes32(step.input) { byInput[input, default: []].append(index) }
    }
}

/// The forward-secrecy attack of issue 13 (PROTOCOL.md §9): an attacker holds a seized device's
/// encoded state (prekey store included) and every envelope ever published. It tries the X25519
/// secret keys it finds against the 2SM ciphertexts addressed to the victim (matched by their
/// headers; by trial only where a header does not decide), follows every key a decrypted message
/// hands on, expands every recovered seed into member secrets, and derives every update secret
/// and ratchet state those give. What it ends up knowing is returned as a set of values.
struct KeyRecoveryAttack {
    let victim: MemberID
    let binding: TwoPartyBinding
    /// 2SM messages addressed to the victim, with their senders, in publication order.
    let directMessages: [(sender: MemberID, message: TwoPartyMessage)]
    /// Every ID that ever took part (member secrets are derived per ID).
    let participants: [MemberID]
    let graph: DerivationGraph

    /// What the attacker learns from `prekeys` and, when `usingState`, from everything else the
    /// seized group state holds (its 2SM keys, ratchet states, member secrets and seed).
    func knownValues(seized group: Group, prekeys: PrekeyStore?, usingState: Bool) -> Set<Bytes32> {
        let state = group.keyAgreement
        let suite = state.suite.suite
        var known = Set<Bytes32>()
        var recovered: [Bytes32] = []
        // 2SM: keys by peer, as the seized channels hold them, plus whatever decrypted messages hand on.
        var received: [MemberID: [PKESecretKey]] = [:]
        var indexed: [MemberID: [UInt64: PKESecretKey]] = [:]
        if usingState {
            known.formUnion(state.ratchets.values)
            known.formUnion(state.memberSecrets.values)
            if let seed = state.nextSeed { recovered.append(seed) }  // expanded as a seed below
            for (peer, channel) in state.twoParty {
                indexed[peer] = channel.mySecretKeys
                if let key = channel.receivedSecretKey { received[peer] = [key] }
            }
        }
        var opened = [Bool](repeating: false, count: directMessages.count)
        var tried = Set<TriedPair>()
        var progress = true
        while progress {
            progress = false
            for (i, entry) in directMessages.enumerated() where !opened[i] {
                let header = entry.message.header
                var candidates: [PKESecretKey] = []
                switch header.origin {
                case .other:
                    if let index = header.index, index > 0 {
                        if let key = indexed[entry.sender]?[index] { candidates = [key] }
                    } else if let prekey = header.prekey, let key = prekeys?.secret(for: prekey) {
                        candidates = [key]
                    }
                case .me:
                    candidates = received[entry.sender] ?? []  // the header does not say which: trial
                }
                for key in candidates where tried.insert(TriedPair(message: i, key: key.secretBytes32)).inserted {
                    guard let plaintext = try? TwoPartyState.open(
                        entry.message, with: key, from: entry.sender, to: victim, binding: binding) else { continue }
                    opened[i] = true
                    progress = true
                    received[entry.sender, default: []].append(PKESecretKey(secretBytes: plaintext.keyForMe))
                    // A seed, a member secret or a ratchet state (32 bytes, or 33 with a forward's tag).
                    if let value = Bytes32(plaintext.message) ?? Bytes32(plaintext.message.dropFirst()) {
                        recovered.append(value)
                    }
                    break
                }
            }
        }
        var queue: [Bytes32] = []
        func learn(_ value: Bytes32) {
            if known.insert(value).inserted { queue.append(value) }
        }
        for value in known { queue.append(value) }
        for value in recovered {
            learn(value)
            // Any recovered value may be a seed: expand it for every participant.
            let prk = KeyDerivations.memberSecretKey(seed: value, suite: suite)
            for id in participants { learn(KeyDerivations.memberSecret(prk: prk, for: id, suite: suite)) }
        }

        var fired = [Bool](repeating: false, count: graph.steps.count)
        func tryFire(_ index: Int) {
            guard !fired[index] else { return }
            let step = graph.steps[index]
            if let salt = step.state, !known.contains(salt) { return }
            if let input = Bytes32(step.input), !known.contains(input) { return }
            fired[index] = true
            let (updateSecret, next) = KeyDerivations.updateRatchet(state: step.state, input: step.input, suite: suite)
            learn(updateSecret)
            learn(next)
        }
        for index in graph.fromEpsilon { tryFire(index) }
        while let value = queue.popLast() {
            for index in graph.bySalt[value] ?? [] { tryFire(index) }
            for index in graph.byInput[value] ?? [] { tryFire(index) }
        }
        return known
    }

    private struct TriedPair: Hashable {
        let message: Int
        let key: Bytes32
    }

    /// Whether update secret `updateSecret` opens the application message in `envelope`: the
    /// attacker runs the §7 ratchet from it, with the protocol's own code.
    static func opens(_ envelope: Envelope, with updateSecret: Bytes32, suite: CipherSuiteID) -> Bool {
        guard let payload = envelope.payload, let header = ApplicationHeader(of: envelope),
              let ciphertext = try? ApplicationCiphertext(wireBytes: payload) else { return false }
        var messaging = MessagingState(suite: suite, configuration: MessagingConfiguration(maximumSkipPerMessage: MessagingConfiguration.hardLimit))
        messaging.startEpoch(for: envelope.sender, epoch: ciphertext.epoch, updateSecret: updateSecret)
        if case .success = messaging.decrypt(ciphertext, header: header) { return true }
        return false
    }
}

/// The secret inventory of issue 13: every secret a device used up (and so had to delete), scanned
/// for in the bytes of a seized state. Values are matched by their first eight bytes (random 32-byte
/// secrets; a false match has odds of about 2^-64 per position and value).
enum SecretInventory {
    /// How many of `retired` occur anywhere in `bytes`.
    static func occurrences(of retired: Set<UInt64>, in bytes: [UInt8]) -> Int {
        guard bytes.count >= 32, !retired.isEmpty else { return 0 }
        var found = Set<UInt64>()
        var word: UInt64 = 0
        for (offset, byte) in bytes.enumerated() {
            word = word << 8 | UInt64(byte)
            if offset >= 7, offset + 25 <= bytes.count, retired.contains(word) { found.insert(word) }
        }
        return found.count
    }
}
