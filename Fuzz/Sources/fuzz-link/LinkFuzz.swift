import DCGKAEncoding
import DCGKACrypto
import Link
import Relay
import Sync
import FuzzSupport

// Target `link`: what a relay or a peer reads from a socket before and around the handshake
// (NETWORK.md §12–§13). The first byte picks the decoder:
//   0  a responder reads the input as handshake message 1 (then, if it accepted it, writes
//      message 2 and reads the rest as message 3)
//   1  an initiator writes message 1 and reads the input as message 2
//   2  LinkRecordFraming over the input in pieces: bounded buffer, records re-frame to their bytes
//   3  RelayAdmission.check of the input as an envelope of the fixture group (unknown group, and
//      with A as its only participant)
//   4  RelayAddress parsing of the input as text

@_cdecl("fuzz_link_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    fuzzMain(argc, argv, seeds: seeds) { data, size in fuzz(data ?? emptyInput, size) }
}

let decoders = 5

func seeds() -> [[UInt8]] {
    let fixtures = Fixtures.shared
    var rng = SeededRandom(seed: 5)
    var out: [[UInt8]] = []
    if var initiator = try? LinkHandshake.initiator(identity: fixtures.a.identity, expectedPeer: nil, random: &rng),
       var responder = try? LinkHandshake.responder(identity: fixtures.b.identity, random: &rng),
       let first = try? initiator.write() {
        out.append(selectorSeed(0, first))
        if (try? responder.read(first)) != nil, let second = try? responder.write() {
            out.append(selectorSeed(1, second))
        }
    }
    if let record = try? LinkRecordFraming.frame([Array(repeating: 7, count: 40), Array(repeating: 9, count: 16)]) {
        out.append(selectorSeed(2, record))
    }
    out.append(selectorSeed(3, fixtures.create.wireBytes))
    out.append(selectorSeed(4, Array("dcgka-relay://127.0.0.1:7447/\(RelayAddress.encode(fixtures.a.identity.id))".utf8)))
    return out
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    guard let selector = input.byte() else { return 0 }
    let bytes = input.rest()
    let fixtures = Fixtures.shared
    var rng = SeededRandom(seed: 9)
    switch Int(selector) % decoders {
    case 0:
        guard var responder = try? LinkHandshake.responder(identity: fixtures.b.identity, random: &rng) else { return 0 }
        let split = min(bytes.count, 32 + Int(bytes.first ?? 0))
        guard (try? responder.read(Array(bytes.prefix(split)))) != nil else {
            require(responder.action == .dead, "a refused message 1 leaves the responder alive")
            return 0
        }
        guard (try? responder.write()) != nil else { return 0 }
        if (try? responder.read(Array(bytes.dropFirst(split)))) != nil {
            require(false, "an unauthenticated message 3 completed a handshake")
        }
    case 1:
        guard var initiator = try? LinkHandshake.initiator(identity: fixtures.a.identity, expectedPeer: fixtures.b.identity.id, random: &rng),
              (try? initiator.write()) != nil
        else { return 0 }
        if (try? initiator.read(bytes)) != nil {
            require(false, "a forged message 2 authenticated the expected peer")
        }
    case 2:
        var reader = LinkRecordFraming()
        var offset = 0
        var step = 1
        var framed: [UInt8] = []
        loop: while offset < bytes.count {
            let end = min(bytes.count, offset + step)
            reader.append(bytes[offset..<end])
            offset = end
            step = step % 11 + 1
            require(reader.bufferedBytes <= LinkRecordFraming.maximumRecordBytes + LinkRecordFraming.headerBytes + 11,
                    "the record reader keeps more than one record")
            while true {
                do {
                    guard let record = try reader.next() else { break }
                    framed += (try? LinkRecordFraming.frame(record)) ?? []
                } catch {
                    break loop
                }
            }
        }
        require(Array(bytes.prefix(framed.count)) == framed, "records do not re-frame to the bytes they came from")
    case 3:
        for participants: Set<MemberID>? in [nil, [fixtures.a.identity.id]] {
            if let admitted = try? RelayAdmission.check(
                wire: bytes, group: fixtures.groupID, participants: participants, maximumEnvelopeBytes: 1 << 20) {
                require(admitted.envelope.hasValidSignature(), "the relay admitted an envelope whose signature does not verify")
            }
        }
    default:
        let text = String(decoding: bytes, as: UTF8.self)
        if let address = try? RelayAddress(parsing: text) {
            require((try? RelayAddress(parsing: address.description)) == address, "an address does not survive its own text form")
        }
    }
    return 0
}
