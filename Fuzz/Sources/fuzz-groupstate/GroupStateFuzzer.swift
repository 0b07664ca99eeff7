import DCGKAEncoding
import DCGKACrypto
import CausalBroadcast
import KeyAgreement
import Membership
import GroupMessaging
import DCGKAGroup
import FuzzSupport

// Target `groupstate`: persisted state (§8), what an application reads back from storage. The first
// byte picks the decoder:
//   0  Group (identity, DCGKAState, BroadcastState, MessagingState, key bundles)
//   1  DCGKAState
//   2  MessagingState
//   3  BroadcastState
//   4  MembershipState
// Whatever decodes must re-encode to its input. The decoded state is then used a little (a send, a
// receive, deliveries, decryptions of the fixture's messages) and must still round-trip afterwards:
// a decoder that accepts a state its own operations cannot continue from is a finding too.

@_cdecl("fuzz_groupstate_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    fuzzMain(argc, argv, seeds: seeds) { data, size in fuzz(data ?? emptyInput, size) }
}

let decoders = 5

func seeds() -> [[UInt8]] {
    let fixtures = Fixtures.shared
    var out: [[UInt8]] = []
    for group in [fixtures.a0, fixtures.b0, fixtures.bMid, fixtures.d0] + fixtures.final {
        out.append(selectorSeed(0, group.wireBytes))
        out.append(selectorSeed(1, group.keyAgreement.wireBytes))
        out.append(selectorSeed(2, group.messaging.wireBytes))
        out.append(selectorSeed(3, group.broadcast.wireBytes))
        out.append(selectorSeed(4, group.keyAgreement.history.wireBytes))
    }
    return out
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    guard let selector = input.byte() else { return 0 }
    let bytes = input.rest()
    switch Int(selector) % decoders {
    case 0:
        if let group = decodeCanonical(Group.self, bytes) { exercise(group) }
    case 1:
        if var state = decodeCanonical(DCGKAState.self, bytes) {
            let members = state.members
            _ = state.myUpdateSecretIsExposed
            for member in members.sorted().prefix(4) { _ = state.wasMember(member, before: 2) }
        }
    case 2:
        if let state = decodeCanonical(MessagingState.self, bytes) { exercise(state) }
    case 3:
        if let state = decodeCanonical(BroadcastState.self, bytes) { exercise(state) }
    default:
        if let state = decodeCanonical(MembershipState.self, bytes) {
            _ = state.members()
            for op in state.operations.prefix(4) { _ = state.members(asSeenBy: op.id.sender, atSeq: op.id.seq) }
        }
    }
    return 0
}

func exercise(_ group: Group) {
    let fixtures = Fixtures.shared
    _ = group.members
    _ = group.needsRefresh
    _ = group.missing
    let prekeys = fixtures.person(group.me)?.prekeys ?? PrekeyStore()
    var sender = group
    if (try? sender.send([1, 2, 3], now: Fixtures.now)) != nil { checkRoundTrip(sender) }
    var receiver = group
    var rng = SeededRandom(seed: 4)
    for envelope in fixtures.pool.prefix(3) + fixtures.applicationMessages.prefix(1) {
        _ = receiver.receive(envelope, prekeys: prekeys, using: &rng)
    }
    checkRoundTrip(receiver)
}

func exercise(_ state: MessagingState) {
    _ = state.knownMembers
    var copy = state
    for envelope in Fixtures.shared.applicationMessages.prefix(3) {
        guard let payload = envelope.payload, let ciphertext = try? ApplicationCiphertext(wireBytes: payload) else { continue }
        let before = copy
        switch copy.decrypt(ciphertext, header: envelope.applicationHeader(epoch: ciphertext.epoch, index: ciphertext.index)) {
        case .success: checkRoundTrip(copy)
        case .failure: require(copy == before, "a failed decryption changed a decoded messaging state")
        }
    }
    for member in state.knownMembers.prefix(2) {
        var sending = state
        let epoch = sending.currentEpoch(of: member) ?? 0
        if let sent = try? sending.encrypt([7], as: member, header: { epoch, index in
            ApplicationHeader(
                version: 1, suite: state.suite, groupID: Fixtures.shared.groupID, sender: member, seq: 9, prev: .zero,
                epoch: epoch, index: index)
        }) {
            checkRoundTrip(sent)
            checkRoundTrip(sending)
        }
        var restarted = state
        restarted.startEpoch(for: member, epoch: epoch &+ 1, updateSecret: .zero)
        checkRoundTrip(restarted)
        restarted.forget(member)
        checkRoundTrip(restarted)
    }
}

func exercise(_ state: BroadcastState) {
    _ = state.missing()
    _ = state.frontier
    var copy = state
    var delivered = 0
    while delivered < 16, let envelope = copy.nextDeliverable() {
        copy.markDelivered(envelope)
        delivered += 1
    }
    checkRoundTrip(copy)
    for envelope in Fixtures.shared.pool.prefix(4) {
        _ = copy.receive(envelope, isKnownSender: { _ in true })
    }
    checkRoundTrip(copy)
}
