import DCGKAEncoding
import DCGKACrypto
import CausalBroadcast
import KeyAgreement
import Membership
import TwoPartyMessaging
import DCGKAGroup
import FuzzSupport

// Target `control`: the body of a control envelope (§5.3), `ControlBody(kind:payload:)` for every
// kind. The first byte picks the kind (create, add, remove, update, ack, add-ack, welcome-ack), the
// rest is the payload. A decoded body must re-encode to the payload; what it carries (key bundles,
// the welcome of an add, the direct messages) is then decoded and checked the way a member would.

@_cdecl("fuzz_control_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    fuzzMain(argc, argv, seeds: seeds) { data, size in fuzz(data ?? emptyInput, size) }
}

let kinds: [ControlKind] = [.create, .add, .remove, .update, .ack, .addAck, .welcomeAck, .resync, .resyncAnswer]

func seeds() -> [[UInt8]] {
    let fixtures = Fixtures.shared
    var out: [[UInt8]] = []
    for envelope in fixtures.allEnvelopes where envelope.kind != .application && out.count < 40 {
        guard let kind = ControlKind(rawValue: envelope.kind.rawValue), let index = kinds.firstIndex(of: kind) else { continue }
        out.append(selectorSeed(index, envelope.payload ?? []))
    }
    // A remove that carries fork evidence: two headers of one member at one seq (a fork made from
    // copies of a fixture member's state).
    if let evidence = fixtures.forkEvidence, let remove = kinds.firstIndex(of: .remove) {
        var body = ControlBody(fields: .remove(evidence.sender), directMessages: [])
        body.forkEvidence = evidence.wireBytes
        out.append(selectorSeed(remove, body.payload))
    }
    // An empty body of every kind without fields.
    for index in 3..<kinds.count { out.append(selectorSeed(index, [0])) }
    return out
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    guard let selector = input.byte() else { return 0 }
    let kind = kinds[Int(selector) % kinds.count]
    let payload = input.rest()
    guard let body = try? ControlBody(kind: kind, payload: payload) else { return 0 }
    require(body.kind == kind, "decoded body has kind \(body.kind), asked for \(kind)")
    require(body.payload == payload, "\(kind) body re-encodes to other bytes: \(hexString(payload))")

    let fixtures = Fixtures.shared
    switch body.fields {
    case .create(let bundles):
        for bundle in bundles {
            checkRoundTrip(bundle)
            _ = try? bundle.verify(now: Fixtures.now)
        }
    case .add(let bundle, let welcome):
        checkRoundTrip(bundle)
        _ = try? bundle.verify(now: Fixtures.now)
        if let context = try? welcome.decodeContext() {
            decodeCanonical(WelcomeContext.self, context)
        }
        if let decoded = try? welcome.decode() {
            require(decoded.wireBytes == welcome.bytes, "welcome re-encodes to other bytes")
            require((try? welcome.decodeContext()) == decoded.context, "decodeContext disagrees with decode")
        }
    case .remove(let member):
        _ = fixtures.b0.keyAgreement.history.isKnownParticipant(member)
        // Fork evidence (§6.2): bounded, typed errors, canonical when it decodes.
        if let bytes = body.forkEvidence, let evidence = try? ForkEvidence(wire: bytes, groupID: fixtures.b0.groupID) {
            require(evidence.wireBytes == bytes, "fork evidence re-encodes to other bytes")
            require(evidence.first.seq <= evidence.second.seq, "fork evidence out of order")
            _ = evidence.verify()
        }
    case .resync(_, let key, let lost):
        _ = key.isLowOrder
        require(lost == lost.sorted() && Set(lost).count == lost.count, "a decoded resync names its lost members unsorted")
    case .update, .ack, .addAck, .welcomeAck, .resyncAnswer:  // (flags are checked by the re-encoding)
        break
    }
    for direct in body.directMessages {
        checkRoundTrip(direct.message)
        // Which of my keys the header names, on a real channel (B's channel with A).
        if let channel = fixtures.b0.keyAgreement.twoParty[fixtures.a.identity.id] {
            _ = channel.secretKeyBytes(for: direct.message.header)
        }
    }
    return 0
}
