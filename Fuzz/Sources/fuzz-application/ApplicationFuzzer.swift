import DCGKAEncoding
import DCGKACrypto
import CausalBroadcast
import GroupMessaging
import DCGKAGroup
import FuzzSupport

// Target `application`: the body of an application envelope (§6.1, §7). The first byte picks the
// envelope header the message is bound to (one of the fixture's application envelopes: sender, seq,
// prev); the rest is an ApplicationCiphertext (epoch, index, ciphertext), decoded and then decrypted
// with B's fixed messaging state (taken before those messages reached B), which holds the ratchets
// of A and C. Checks: the ciphertext re-encodes to its input; a decryption that fails changes
// nothing; one that succeeds deletes the key it used (the same message never decrypts twice), and
// the state afterwards round-trips through its encoding.

@_cdecl("fuzz_application_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    fuzzMain(argc, argv, seeds: seeds) { data, size in fuzz(data ?? emptyInput, size) }
}

func seeds() -> [[UInt8]] {
    let messages = Fixtures.shared.applicationMessages
    var out: [[UInt8]] = []
    for (i, envelope) in messages.enumerated() {
        out.append(selectorSeed(i, envelope.payload ?? []))
        // The same ciphertext under another header (authentication must fail).
        out.append(selectorSeed((i + 1) % messages.count, envelope.payload ?? []))
    }
    return out
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    guard let selector = input.byte() else { return 0 }
    let fixtures = Fixtures.shared
    let envelope = fixtures.applicationMessages[Int(selector) % fixtures.applicationMessages.count]
    guard let ciphertext = decodeCanonical(ApplicationCiphertext.self, input.rest()) else { return 0 }

    var state = fixtures.bMid.messaging
    let before = state
    let header = envelope.applicationHeader(epoch: ciphertext.epoch, index: ciphertext.index)
    switch state.decrypt(ciphertext, header: header) {
    case .failure:
        require(state == before, "a failed decryption changed the messaging state")
    case .success:
        checkRoundTrip(state)
        let afterFirst = state
        if case .success = state.decrypt(ciphertext, header: header) {
            finding("an application message decrypted twice (its key was not deleted)")
        }
        require(state == afterFirst, "a failed second decryption changed the messaging state")
    }
    // A header that disagrees with the ciphertext's epoch or index never opens it.
    var other = before
    let skewed = envelope.applicationHeader(epoch: ciphertext.epoch, index: ciphertext.index &+ 1)
    if case .success = other.decrypt(ciphertext, header: skewed) {
        finding("a ciphertext decrypted under a header with another index")
    }
    return 0
}
