import DCGKAEncoding
import DCGKACrypto
import CausalBroadcast
import KeyAgreement
import GroupMessaging
import FuzzSupport

// Target `envelope`: the input is an envelope in wire form (group ID from the transport) and in
// canonical form (group ID included), §6.1. Whatever decodes must re-encode to the input, its other
// form must decode to the same envelope (same hash), and its signature check and payload decoders
// must run without trapping.

@_cdecl("fuzz_envelope_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    fuzzMain(argc, argv, seeds: seeds) { data, size in fuzz(data ?? emptyInput, size) }
}

func seeds() -> [[UInt8]] {
    let fixtures = Fixtures.shared
    let envelopes = fixtures.allEnvelopes
    var out: [[UInt8]] = []
    // Every kind, in wire form, then a few canonical forms.
    var seen: Set<EnvelopeKind> = []
    for envelope in envelopes where out.count < 30 {
        if seen.insert(envelope.kind).inserted || out.count < 20 { out.append(envelope.wireBytes) }
    }
    for envelope in envelopes.prefix(12) { out.append(envelope.canonicalBytes) }
    return out
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = FuzzInput(data, size).bytes
    let groupID = Fixtures.shared.groupID

    if let envelope = try? Envelope(wire: bytes, groupID: groupID) {
        require(envelope.wireBytes == bytes, "wire envelope re-encodes to other bytes: \(hexString(bytes))")
        require(envelope.wireByteCount == bytes.count, "wireByteCount \(envelope.wireByteCount) != \(bytes.count)")
        let canonical = envelope.canonicalBytes
        require(canonical.count == envelope.canonicalByteCount, "canonicalByteCount is wrong")
        guard let again = try? Envelope(canonical: canonical) else { finding("the canonical form of a wire envelope does not decode") }
        require(again.hash == envelope.hash && again.canonicalBytes == canonical, "wire and canonical forms disagree")
        exercise(envelope)
    }

    if let envelope = try? Envelope(canonical: bytes) {
        require(envelope.canonicalBytes == bytes, "canonical envelope re-encodes to other bytes: \(hexString(bytes))")
        // The hash covers header and signature: everything before the payload section (§6.1).
        let payloadSection = 1 + (envelope.payload.map { varintSize($0.count) + $0.count } ?? 0)
        require(envelope.hash == envelope.suite.suite.hash(Array(bytes.dropLast(payloadSection))),
                "envelope hash is not the hash of its canonical header and signature")
        guard let again = try? Envelope(wire: envelope.wireBytes, groupID: envelope.groupID) else {
            finding("the wire form of a canonical envelope does not decode")
        }
        require(again.hash == envelope.hash, "canonical and wire forms hash differently")
        exercise(envelope)
    }
    return 0
}

/// What a receiver does with a decoded envelope before the protocol state: the signature check and
/// the payload decoders of its kind.
func exercise(_ envelope: Envelope) {
    _ = envelope.hasValidSignature()
    _ = envelope.operationID
    require((envelope.prev != nil) == (envelope.seq > 1), "prev present iff seq > 1 does not hold")
    require((envelope.acked != nil) == envelope.kind.isAcknowledgment, "acked present iff acknowledgment does not hold")
    require((envelope.application != nil) == (envelope.kind == .application), "application fields iff application does not hold")
    require(!envelope.isPruned || envelope.kind == .application, "a control envelope decoded without its payload")
    require(envelope.pruned().hash == envelope.hash, "pruning changed the hash")
    if let payload = envelope.payload {
        require(envelope.pruned().withPayload(payload) != nil, "a decoded payload does not match its own payloadHash")
    }
    if envelope.kind == .application {
        if let payload = envelope.payload { decodeCanonical(ApplicationCiphertext.self, payload) }
    } else if let kind = ControlKind(rawValue: envelope.kind.rawValue), let payload = envelope.payload,
              let body = try? ControlBody(kind: kind, payload: payload) {
        require(body.payload == payload, "control body re-encodes to other bytes")
    }
}

func varintSize(_ value: Int) -> Int {
    var v = value, n = 1
    while v >= 0x80 { v >>= 7; n += 1 }
    return n
}
