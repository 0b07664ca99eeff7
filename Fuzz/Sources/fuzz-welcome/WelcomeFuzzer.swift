import DCGKAEncoding
import DCGKACrypto
import CausalBroadcast
import KeyAgreement
import Membership
import TwoPartyMessaging
import DCGKAGroup
import FuzzSupport

// Target `welcome`: what a new member decodes (§5.6). The first byte picks the decoder:
//   0  Welcome (context, 2SM ratchet ciphertext, the adder's MembershipState)
//   1  EncodedWelcome as an add carries it: decodeContext() and decode() must agree
//   2  MembershipState, then its queries and a merge into a real history and into an empty one
//   3  WelcomeContext (frontier and key bundles)
//   4  MembershipOperation
//   5  Frontier
//   6  join: D joins from an add signed by A (at the seq of A's real add) carrying the input as its
//      welcome, so the whole join path (context, 2SM decryption of the ratchet, history merge,
//      processing, D's acknowledgment) runs on fuzzer-chosen welcome bytes.
// Everything that decodes must re-encode to its input.

@_cdecl("fuzz_welcome_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    fuzzMain(argc, argv, seeds: seeds) { data, size in fuzz(data ?? emptyInput, size) }
}

let decoders = 7

func seeds() -> [[UInt8]] {
    let fixtures = Fixtures.shared
    let welcome = fixtures.welcome.bytes
    let decoded = try! fixtures.welcome.decode()
    let context = try! fixtures.welcome.decodeContext()
    let contextValue = try! WelcomeContext(wireBytes: context)
    var out: [[UInt8]] = [
        selectorSeed(0, welcome),
        selectorSeed(1, welcome),
        selectorSeed(2, decoded.history.wireBytes),
        selectorSeed(3, context),
        selectorSeed(5, contextValue.frontier.wireBytes),
        selectorSeed(6, welcome),
    ]
    for group in [fixtures.a0, fixtures.bMid] + fixtures.final {
        out.append(selectorSeed(2, group.keyAgreement.history.wireBytes))
        out.append(selectorSeed(5, group.broadcast.frontier.wireBytes))
    }
    for op in fixtures.final[0].keyAgreement.history.operations.prefix(8) {
        out.append(selectorSeed(4, op.wireBytes))
    }
    out.append(selectorSeed(2, MembershipState().wireBytes))
    out.append(selectorSeed(3, [0, 0]))  // an empty frontier, no bundles
    return out
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    guard let selector = input.byte() else { return 0 }
    let bytes = input.rest()
    switch Int(selector) % decoders {
    case 0:
        if let welcome = decodeCanonical(Welcome.self, bytes) {
            checkRoundTrip(welcome.history)
            checkRoundTrip(welcome.ratchetCiphertext)
            decodeCanonical(WelcomeContext.self, welcome.context)
        }
    case 1:
        guard let welcome = encodedWelcome(bytes) else { return 0 }
        let context = try? welcome.decodeContext()
        if let decoded = try? welcome.decode() {
            require(context == decoded.context, "decodeContext() disagrees with decode()")
            require(decoded.wireBytes == bytes, "welcome re-encodes to other bytes")
        }
    case 2:
        if let state = decodeCanonical(MembershipState.self, bytes) { exercise(state) }
    case 3:
        if let context = decodeCanonical(WelcomeContext.self, bytes) {
            for bundle in context.bundles { _ = try? bundle.verify(now: Fixtures.now) }
            var broadcast = Fixtures.shared.d0.broadcast
            broadcast.adoptFrontier(context.frontier)
            checkRoundTrip(broadcast)
        }
    case 4:
        if let op = decodeCanonical(MembershipOperation.self, bytes) {
            _ = op.isWellFormed
            var history = Fixtures.shared.bMid.keyAgreement.history
            if (try? history.apply(op)) != nil { checkRoundTrip(history) }
        }
    case 5:
        decodeCanonical(Frontier.self, bytes)
    default:
        join(welcome: bytes)
    }
    return 0
}

/// An `EncodedWelcome` holding exactly `bytes`, the way a member gets one: from an add's body.
func encodedWelcome(_ bytes: [UInt8]) -> EncodedWelcome? {
    let fixtures = Fixtures.shared
    let payload = replacingWelcome(in: fixtures.add.payload ?? [], with: bytes)
    guard case .add(_, let welcome)? = (try? ControlBody(kind: .add, payload: payload))?.fields else {
        finding("an add body with a welcome of \(bytes.count) bytes does not decode")
    }
    require(welcome.bytes == bytes, "the welcome of an add is not the bytes it carried")
    return welcome
}

func exercise(_ state: MembershipState) {
    let members = state.members()
    let operations = state.operations
    require(operations.count == state.operationCount, "operations.count != operationCount")
    _ = state.participants
    for op in operations.prefix(6) {
        _ = state.members(asSeenBy: op.id.sender, atSeq: op.id.seq)
        for other in operations.prefix(6) { _ = state.precedes(op.id, other.id) }
    }
    require(members.isSubset(of: Set(state.participants)), "a member is not a participant")
    // What a joining member does with the adder's history, and a merge into an existing one.
    var empty = MembershipState()
    if (try? empty.checkedMerge(state)) != nil { checkRoundTrip(empty) }
    var existing = Fixtures.shared.bMid.keyAgreement.history
    let before = existing.wireBytes
    do {
        try existing.checkedMerge(state)
        checkRoundTrip(existing)
    } catch {
        require(existing.wireBytes == before, "a failed checkedMerge changed the state")
    }
}

func join(welcome bytes: [UInt8]) {
    let fixtures = Fixtures.shared
    let add = fixtures.add
    let payload = replacingWelcome(in: add.payload ?? [], with: bytes)
    let invitation = Envelope.sign(
        identity: fixtures.a.identity, suite: add.suite, groupID: add.groupID, seq: add.seq, prev: add.prev,
        kind: .add, acked: nil, payload: payload)
    var rng = SeededRandom(seed: 6)
    guard let (group, output) = try? Group.join(
        identity: fixtures.d.identity, invitation: invitation, prekeys: fixtures.d.prekeys, using: &rng)
    else { return }
    require(group.isMember || output.events.contains { if case .joined = $0 { true } else { false } }, "join returned no joined event")
    checkRoundTrip(group)
    for envelope in output.envelopes {
        guard let decoded = try? Envelope(wire: envelope.wireBytes, groupID: envelope.groupID) else {
            finding("an envelope D produced does not decode")
        }
        require(decoded.hasValidSignature(), "an envelope D produced has a bad signature")
    }
}
