import DCGKAEncoding
import DCGKACrypto
import KeyAgreement
import TwoPartyMessaging
import DCGKAGroup
import FuzzSupport

// Target `twoparty`: two-party secure messaging (§3). The first byte picks what runs:
//   0  TwoPartyMessage decode
//   1  TwoPartyHeader decode, and which key of a real channel it names
//   2  TwoPartyState decode, then the decoded state looks up keys and sends
//   3  the plaintext parser: the input is a 2SM *plaintext*, sealed here to B's prekey (HPKE needs
//      the key, which a fuzzer cannot guess), then opened with TwoPartyState.open and received by a
//      fresh channel, so every byte the fuzzer picks reaches the parser
//   4  a TwoPartyMessage received on B's real channel with A (B's fixture state after the create)
// Everything that decodes must re-encode to its input; a state that received or sent must round-trip.

@_cdecl("fuzz_twoparty_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    fuzzMain(argc, argv, seeds: seeds) { data, size in fuzz(data ?? emptyInput, size) }
}

let modes = 5

struct Setup {
    let fixtures = Fixtures.shared
    var a: MemberID { fixtures.a.identity.id }
    var b: MemberID { fixtures.b.identity.id }
    var binding: TwoPartyBinding { TwoPartyBinding(suite: .suite1, groupID: fixtures.groupID) }
    /// B's prekey, to which mode 3 seals.
    var prekey: PKESecretKey { fixtures.b.prekeys.secret(for: fixtures.b.bundle.prekey)! }
    /// B's channel with A after joining.
    var channel: TwoPartyState { fixtures.b0.keyAgreement.twoParty[a]! }
}

nonisolated(unsafe) let setup = Setup()

func directMessagesFromA() -> [TwoPartyMessage] {
    let fixtures = setup.fixtures
    var out: [TwoPartyMessage] = []
    for envelope in fixtures.allEnvelopes where envelope.sender == setup.a {
        if let body = fixtures.controlBody(of: envelope) { out += body.directMessages.map(\.message) }
    }
    return out
}

func seeds() -> [[UInt8]] {
    var out: [[UInt8]] = []
    let messages = directMessagesFromA()
    for message in messages.prefix(6) {
        out.append(selectorSeed(0, message.wireBytes))
        out.append(selectorSeed(1, message.header.wireBytes))
    }
    for message in messages.prefix(10) { out.append(selectorSeed(4, message.wireBytes)) }
    for group in [setup.fixtures.b0, setup.fixtures.bMid] + setup.fixtures.final {
        for channel in group.keyAgreement.twoParty.values.prefix(2) { out.append(selectorSeed(2, channel.wireBytes)) }
    }
    var rng = SeededRandom(seed: 3)
    for message in [[], Array("seed".utf8), rng.bytes(40)] {
        let plaintext = WireWriter.build { writer in
            writer.writeLengthPrefixed(message)
            writer.write(rng.bytes32())
            writer.writeVarint(UInt64(1 + message.count))
            writer.write(PKESecretKey.generate(using: &rng).publicKey)
        }
        out.append(selectorSeed(3, plaintext))
    }
    return out
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    guard let selector = input.byte() else { return 0 }
    let bytes = input.rest()
    switch Int(selector) % modes {
    case 0:
        if let message = decodeCanonical(TwoPartyMessage.self, bytes) {
            _ = try? TwoPartyState.open(message, with: setup.prekey, from: setup.a, to: setup.b, binding: setup.binding)
        }
    case 1:
        if let header = decodeCanonical(TwoPartyHeader.self, bytes) {
            require((header.prekey != nil) == (header.origin == .other && header.index == 0), "prekey present iff index 0")
            _ = setup.channel.secretKeyBytes(for: header)
        }
    case 2:
        guard var state = decodeCanonical(TwoPartyState.self, bytes) else { return 0 }
        for message in directMessagesFromA().prefix(3) { _ = state.secretKeyBytes(for: message.header) }
        _ = state.receivedSecretKeyBytes
        var rng = SeededRandom(seed: 2)
        if let sent = try? state.send([1, 2, 3], from: setup.b, to: setup.a, binding: setup.binding, using: &rng) {
            checkRoundTrip(sent)
            checkRoundTrip(state)
        }
    case 3:
        parsePlaintext(bytes)
    default:
        guard let message = decodeCanonical(TwoPartyMessage.self, bytes) else { return 0 }
        var channel = setup.channel
        let before = channel
        do {
            _ = try channel.receive(
                message, from: setup.a, to: setup.b, binding: setup.binding, prekeys: setup.fixtures.b.prekeys)
            checkRoundTrip(channel)
            // A key that opened a message is gone: the same message does not open twice (§3.3).
            var again = channel
            if message.header.origin == .other, (message.header.index ?? 0) > 0 {
                let reopened = try? again.receive(
                    message, from: setup.a, to: setup.b, binding: setup.binding, prekeys: setup.fixtures.b.prekeys)
                require(reopened == nil, "a 2SM message opened twice with the same indexed key")
            }
        } catch {
            require(channel == before, "a failed 2SM receive changed the state: \(error)")
        }
    }
    return 0
}

func parsePlaintext(_ plaintext: [UInt8]) {
    var rng = SeededRandom(seed: 1)
    // origin "other", index 0 (a prekey), then the prekey: the header of a first message to B.
    let header = try! TwoPartyHeader(wireBytes: [KeyOrigin.other.rawValue, 0] + setup.fixtures.b.bundle.prekey.bytes)
    let ciphertext: [UInt8]
    do {
        ciphertext = try Suite1().pkeSeal(
            to: setup.fixtures.b.bundle.prekey, info: setup.binding.info(sender: setup.a, recipient: setup.b),
            aad: header.wireBytes, plaintext: plaintext, using: &rng)
    } catch {
        finding("sealing to B's prekey failed: \(error)")
    }
    let message = TwoPartyMessage(header: header, ciphertext: ciphertext)
    let opened = try? TwoPartyState.open(message, with: setup.prekey, from: setup.a, to: setup.b, binding: setup.binding)
    var fresh = TwoPartyState(peerPrekey: nil)
    let received = try? fresh.receive(
        message, from: setup.a, to: setup.b, binding: setup.binding, prekeys: setup.fixtures.b.prekeys)
    require((opened == nil) == (received == nil), "open and receive disagree on a plaintext")
    guard let opened, let received else {
        require(fresh == TwoPartyState(peerPrekey: nil), "a failed receive changed a fresh state")
        return
    }
    require(opened.message == received, "open and receive return different messages")
    // The parser accepted it: it must be exactly the canonical layout.
    let reencoded = WireWriter.build { writer in
        writer.writeLengthPrefixed(opened.message)
        writer.write(opened.keyForMe)
        writer.writeVarint(opened.peerIndex)
        writer.write(opened.peerKey)
    }
    require(reencoded == plaintext, "the 2SM plaintext parser accepted a non-canonical plaintext \(hexString(plaintext))")
    checkRoundTrip(fresh)
    // The channel can answer now, to the key it was given.
    if let reply = try? fresh.send([9], from: setup.b, to: setup.a, binding: setup.binding, using: &rng) {
        require(reply.header.origin == .other && reply.header.index == opened.peerIndex, "the reply names another key")
        checkRoundTrip(fresh)
    }
}
