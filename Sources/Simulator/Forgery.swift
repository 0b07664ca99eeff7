internal import DCGKAEncoding
internal import DCGKACrypto
internal import CausalBroadcast
@_spi(Simulation) internal import DCGKAGroup

/// Forged and tampered envelopes that the simulated network injects on top of the honest ones
/// (issue 13, item 4). Each is made from an honest envelope (the template) at the moment it reaches
/// a device, so that it probes what that device holds, and each must be refused.
enum Forgery: UInt8, CaseIterable {
    /// The template with one bit of its signature flipped.
    case badSignature = 1
    /// The template's canonical bytes with one random bit flipped (it may no longer decode).
    case bitFlip
    /// A strict prefix of the template's bytes.
    case truncated
    /// The template re-signed by its sender for another group, as a replay from another group would be.
    case wrongGroup
    /// The template again, at a device that already delivered it.
    case replay
    /// A fork at the receiver's next position of the sender, signed with the sender's key (what a
    /// stolen key makes), whose `prev` contradicts the envelope the receiver holds before it: refused
    /// on receipt as equivocation. It is proof that the key's holder equivocated, so the receiver
    /// cuts the sender off and the equivocation rule removes it (PROTOCOL-NOTES.md,
    /// "Equivocation"): the network without keys never makes it (``withoutKeys``); only the
    /// malicious member of `--adversary` does, on its own key.
    case forkedPrev
    /// An envelope of the group signed by an identity no membership operation names.
    case stranger
}

extension Forgery {
    /// What a network that holds no member's key can inject: every forgery but a fork.
    static let withoutKeys = allCases.filter { $0 != .forkedPrev }
}

extension DeviceRun {
    /// Delivers a forgery of `template` and judges the device's answer: every forgery must be
    /// refused (a typed rejection, or nothing at all for a replay) and never delivered.
    mutating func deliverForgery(_ forgery: Forgery, of template: Envelope, relay: Relay) {
        guard var group = device.group else { return }
        let sender = template.sender
        let senderKey = relay.identities[sender]
        let delivered = group.broadcast.deliveredSeq(of: sender)
        var forged: Envelope?
        switch forgery {
        case .badSignature:
            var bytes = template.canonicalBytes
            bytes[bytes.count - 1 - Int(device.forgeryRNG.next() % 64)] ^= 1 << UInt8(device.forgeryRNG.next() % 8)
            forged = try? Envelope(canonical: bytes)
        case .bitFlip:
            var bytes = template.canonicalBytes
            bytes[Int(device.forgeryRNG.next() % UInt64(bytes.count))] ^= 1 << UInt8(device.forgeryRNG.next() % 8)
            guard let decoded = try? Envelope(canonical: bytes) else { return record(forgery, accepted: false) }
            forged = decoded
        case .truncated:
            let bytes = template.canonicalBytes
            let prefix = Array(bytes.prefix(Int(device.forgeryRNG.next() % UInt64(bytes.count))))
            guard let decoded = try? Envelope(canonical: prefix) else { return record(forgery, accepted: false) }
            forged = decoded
        case .wrongGroup:
            guard let senderKey else { return }
            forged = Envelope.sign(
                identity: senderKey, suite: template.suite, groupID: GroupID(device.forgeryRNG.bytes32()), seq: template.seq,
                prev: template.prev, kind: template.kind, acked: template.acked, application: template.application,
                payload: template.payload ?? [])
        case .replay:
            guard sender != group.me, template.seq <= delivered,
                  group.broadcast.knownHash(of: sender, at: template.seq) == template.hash else { return }
            forged = template
        case .forkedPrev:
            let seq = delivered + 1
            guard let senderKey, sender != group.me, delivered >= 1,
                  group.broadcast.knownHash(of: sender, at: seq) == nil,
                  group.broadcast.knownHash(of: sender, at: seq + 1) == nil else { return }
            forged = Envelope.sign(
                identity: senderKey, suite: template.suite, groupID: template.groupID, seq: seq,
                prev: device.forgeryRNG.bytes32(), kind: .application, acked: nil,
                application: ApplicationFields(epoch: 1, index: 0, hour: 0), payload: device.forgeryRNG.bytes(48))
        case .stranger:
            let stranger = IdentityKey.generate(using: &device.forgeryRNG)
            forged = Envelope.sign(
                identity: stranger, suite: template.suite, groupID: template.groupID, seq: 1, prev: nil,
                kind: .update, acked: nil, payload: [0])
        }
        guard let forged else { return record(forgery, accepted: false) }
        device.group = nil
        let output = group.receive(forged, prekeys: device.prekeys, using: &device.rng, verifySignature: relay.isValid)
        device.group = group
        let refused = output.events.contains { event in
            switch event {
            case .rejected(let error):
                // A fork is evidence of equivocation, never a bad signature; anything else is not a fork.
                if case .equivocation = error { return false }
                return true
            case .equivocation: return forgery == .forkedPrev
            default: return false
            }
        }
        let accepted = forgery == .replay ? !output.events.isEmpty || !output.envelopes.isEmpty : !refused
        // Not yet judged accepted: watched for in what the device delivers from now on.
        if forgery != .replay && !accepted { device.forged.insert(forged.hash) }
        handle(output, relay: relay, forged: true)
        if accepted { problems.append("device \(index) accepted a forgery (\(forgery)) of \(sender)#\(template.seq)") }
        record(forgery, accepted: accepted)
    }

    mutating func record(_ forgery: Forgery, accepted: Bool) {
        forgeriesInjected += 1
        if accepted { forgeriesAccepted += 1 }
    }
}
