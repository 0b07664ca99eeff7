import DCGKACrypto
import DCGKAEncoding
import Testing
import TwoPartyMessaging

/// Two devices, Alice (0) and Bob (1), each with an identity, a prekey store and a 2SM instance
/// for the other, in one group. Randomness comes from one seeded generator.
struct Duo {
    var rng: SeededRandom
    let binding: TwoPartyBinding
    let identities: [IdentityKey]
    var prekeys: [PrekeyStore]
    let bundles: [KeyBundle]
    var states: [TwoPartyState]

    static let notAfter: UInt64 = 1_000_000

    init(seed: UInt64, bobReceivesFirst: Bool = false) {
        var rng = SeededRandom(seed: seed)
        binding = TwoPartyBinding(suite: .suite1, groupID: GroupID(rng.bytes32()))
        identities = [IdentityKey.generate(using: &rng), IdentityKey.generate(using: &rng)]
        var stores = [PrekeyStore(gracePeriod: 100), PrekeyStore(gracePeriod: 100)]
        var made: [KeyBundle] = []
        for side in 0..<2 {
            made.append(stores[side].generate(identity: identities[side], notAfter: Duo.notAfter, using: &rng))
        }
        bundles = made
        prekeys = stores
        // init(peer): the first key I encrypt to is the peer's prekey, from its verified bundle.
        for bundle in bundles { try! bundle.verify(now: 0) }
        states = [
            TwoPartyState(peerPrekey: bundles[1].prekey),
            TwoPartyState(peerPrekey: bobReceivesFirst ? nil : bundles[0].prekey),
        ]
        self.rng = rng
    }

    var ids: [MemberID] { identities.map(\.id) }

    mutating func send(_ from: Int, _ message: [UInt8]) throws(TwoPartyError) -> TwoPartyMessage {
        try states[from].send(message, from: ids[from], to: ids[1 - from], binding: binding, using: &rng)
    }

    mutating func receive(_ at: Int, _ message: TwoPartyMessage) throws(TwoPartyError) -> [UInt8] {
        try states[at].receive(message, from: ids[1 - at], to: ids[at], binding: binding, prekeys: prekeys[at])
    }

    /// Delivers `message` to side `at`; it must fail and leave that side's state unchanged.
    mutating func rejects(
        _ at: Int, _ message: TwoPartyMessage, from: MemberID? = nil, to: MemberID? = nil,
        binding: TwoPartyBinding? = nil, prekeys: PrekeyStore? = nil, sourceLocation: SourceLocation = #_sourceLocation
    ) -> TwoPartyError? {
        let sender = from ?? ids[1 - at], recipient = to ?? ids[at]
        let binding = binding ?? self.binding, store = prekeys ?? self.prekeys[at]
        return expectFailureLeavesStateUnchanged(&states[at], sourceLocation: sourceLocation) { state throws(TwoPartyError) in
            try state.receive(message, from: sender, to: recipient, binding: binding, prekeys: store)
        }
    }

    /// Sends `text` from one side and delivers it to the other, checking the plaintext.
    @discardableResult
    mutating func exchange(_ from: Int, _ text: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> TwoPartyMessage {
        let message = try send(from, Array(text.utf8))
        #expect(try receive(1 - from, message) == Array(text.utf8), sourceLocation: sourceLocation)
        return message
    }
}

/// A copy of one side's secrets, as an attacker who compromised the device would have them.
struct Snapshot {
    var state: TwoPartyState
    var prekeys: PrekeyStore

    init(_ duo: Duo, side: Int) {
        state = duo.states[side]
        prekeys = duo.prekeys[side]
    }

    /// Every PKE secret key in the snapshot.
    var secrets: [PKESecretKey] {
        Array(state.mySecretKeys.values) + (state.receivedSecretKey.map { [$0] } ?? [])
            + prekeys.entries.values.map(\.secret)
    }

    /// Whether any secret in the snapshot opens `message` sent from `sender` to `recipient`.
    func anySecretOpens(_ message: TwoPartyMessage, sender: MemberID, recipient: MemberID, binding: TwoPartyBinding) -> Bool {
        secrets.contains { secret in
            (try? Suite1().pkeOpen(
                with: secret, info: binding.info(sender: sender, recipient: recipient),
                aad: message.header.wireBytes, ciphertext: message.ciphertext)) != nil
        }
    }
}

/// Runs `body`, which must throw, and checks that the state it was given is exactly as before.
func expectFailureLeavesStateUnchanged(
    _ state: inout TwoPartyState, sourceLocation: SourceLocation = #_sourceLocation,
    _ body: (inout TwoPartyState) throws(TwoPartyError) -> [UInt8]
) -> TwoPartyError? {
    let before = state
    let beforeBytes = state.wireBytes
    do {
        _ = try body(&state)
        Issue.record("expected a failure", sourceLocation: sourceLocation)
        return nil
    } catch {
        #expect(state == before, sourceLocation: sourceLocation)
        #expect(state.wireBytes == beforeBytes, sourceLocation: sourceLocation)
        return error
    }
}
