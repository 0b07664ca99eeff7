import DCGKAEncoding
import DCGKACrypto
import CausalBroadcast
import Sync
import Device
import FuzzSupport

// Target `sync`: what a device takes from links and files (NETWORK.md §11, §14.4) and from people.
// The first byte picks the decoder:
//   0  SyncMessage: whatever decodes re-encodes to its input
//   1  SyncFrameReader over the input in pieces: bounded buffer, frames re-frame to their bytes
//   2  SyncFile.read with A's identity and prekeys and a passphrase (plain, recipients, passphrase)
//   3  MessageContent: a known kind re-encodes to what decodes again to it
//   4  ContactCode.decode of the input as text

@_cdecl("fuzz_sync_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    fuzzMain(argc, argv, seeds: seeds) { data, size in fuzz(data ?? emptyInput, size) }
}

let decoders = 5
let opener = SyncFile.Opener(me: Fixtures.shared.a.identity.id, prekeys: Fixtures.shared.a.prekeys, passphrase: "fuzz")

func seeds() -> [[UInt8]] {
    let fixtures = Fixtures.shared
    let group = fixtures.groupID
    let wires = [fixtures.create.wireBytes]
    let messages: [SyncMessage] = [
        .hello(Hello(holder: fixtures.a.identity.id, groups: [group])),
        .have(group, Frontier(heads: [fixtures.a.identity.id: .init(seq: 1, hash: fixtures.create.hash)])),
        .want(group, ranges: [SeqRange(sender: fixtures.a.identity.id, from: 1, through: 3)], hashes: [fixtures.create.hash]),
        .envelopes(group, wires),
        .ack(group, [fixtures.create.hash]),
        .pruned(group, [SeqRange(sender: fixtures.a.identity.id, from: 2, through: 2)]),
        .evidence(group, wires[0], []),
        .error(.rateLimited, "slow down"),
        .grant(Grant(group: group, holder: fixtures.b.identity.id, notAfter: Fixtures.now, granter: fixtures.a.identity)),
    ]
    var out = messages.map { selectorSeed(0, $0.wireBytes) }
    out.append(selectorSeed(1, messages.prefix(3).flatMap(SyncFraming.frame)))
    var rng = SeededRandom(seed: 12)
    let part = SyncFile.GroupPart(group: group, vector: Frontier(), envelopes: wires)
    for protection: SyncFile.Protection in [
        .plain, .recipients([fixtures.a.bundle, fixtures.b.bundle]), .passphrase("fuzz", .init(logN: 10, r: 1, p: 1)),
    ] {
        if let file = try? SyncFile.write(exporter: fixtures.b.identity.id, groups: [part], protection: protection, using: &rng) {
            out.append(selectorSeed(2, file))
        }
    }
    for kind: MessageContent.Kind in [.text("hello"), .title("Newsroom"), .relays(["dcgka-relay://127.0.0.1:7447/x"]), .lostSync("lost")] {
        out.append(selectorSeed(3, MessageContent(kind, sentAt: Fixtures.now).bytes))
    }
    out.append(selectorSeed(4, Array(ContactCode.encode(fixtures.a.bundle).utf8)))
    return out
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    guard let selector = input.byte() else { return 0 }
    let bytes = input.rest()
    switch Int(selector) % decoders {
    case 0:
        _ = decodeCanonical(SyncMessage.self, bytes)
    case 1:
        var reader = SyncFrameReader(maximumFrameBytes: 4096)
        var offset = 0
        var step = 1
        var framed: [UInt8] = []
        loop: while offset < bytes.count {
            let end = min(bytes.count, offset + step)
            reader.append(bytes[offset..<end])
            offset = end
            step = step % 7 + 1
            require(reader.bufferedBytes <= bytes.count, "the frame reader keeps more than it was given")
            while true {
                do {
                    guard let body = try reader.nextFrame() else { break }
                    var writer = WireWriter()
                    writer.writeLengthPrefixed(body)
                    framed += writer.bytes
                } catch {
                    break loop
                }
            }
        }
        require(Array(bytes.prefix(framed.count)) == framed, "frames do not re-frame to the bytes they came from")
    case 2:
        if let contents = try? SyncFile.read(bytes, opener: opener) {
            for part in contents.groups {
                for wire in part.envelopes { _ = try? Envelope(wire: wire, groupID: part.group) }
            }
        }
    case 3:
        guard let content = try? MessageContent(bytes: bytes) else { return 0 }
        if case .unknown = content.kind { return 0 }
        require((try? MessageContent(bytes: content.bytes)) == content, "a content does not survive its own encoding")
    default:
        let text = String(decoding: bytes, as: UTF8.self)
        if let bundle = try? ContactCode.decode(text, now: Fixtures.now) {
            require((try? bundle.verify(now: Fixtures.now)) != nil, "a contact code gave a bundle that does not verify")
        }
    }
    return 0
}
