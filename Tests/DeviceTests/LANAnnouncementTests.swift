import Testing
import DCGKAEncoding
import DCGKACrypto
import Device

// LAN announcements (NETWORK.md §14.2, issue 11 item 4): the wire form, and a tag only those who
// know the announcer's identity key recognise.

private func identity(_ seed: UInt64) -> MemberID {
    var random = SeededRandom(seed: seed)
    return IdentityKey.generate(using: &random).id
}

@Suite("LAN announcements: a rotating tag only contacts recognise")
struct LANAnnouncementTests {
    let alice = identity(1), bob = identity(2), carol = identity(3)
    /// An instant in the middle of an epoch.
    let now: UInt64 = 1_750_000_050

    @Test("the wire form round-trips, is 44 bytes, and starts with the magic and version 1", .timeLimit(.minutes(3)))
    func roundTrip() throws {
        var random = SeededRandom(seed: 7)
        for port: UInt16 in [1, 7448, 65535] {
            let announcement = LANAnnouncement.make(identity: alice, port: port, now: now, random: &random)
            let wire = announcement.wireBytes
            #expect(wire.count == LANAnnouncement.wireLength && wire.count == 44)
            #expect(Array(wire.prefix(10)) == Array("DCGKA-LAN".utf8) + [1])
            #expect(Array(wire.suffix(2)) == [UInt8(port >> 8), UInt8(port & 0xFF)])
            let decoded = try LANAnnouncement(wireBytes: wire)
            #expect(decoded == announcement)
            #expect(decoded.port == port && decoded.nonce.count == 16 && decoded.tag.count == 16)
            #expect(try LANAnnouncement(nonce: decoded.nonce, tag: decoded.tag, port: port) == announcement)
        }
    }

    @Test("the tag is HMAC-SHA256(SHA-256(\"DCGKA LAN tag v1\" ‖ key), nonce ‖ epoch BE), cut to 16 bytes", .timeLimit(.minutes(3)))
    func tagConstruction() throws {
        var random = SeededRandom(seed: 8)
        let announcement = LANAnnouncement.make(identity: alice, port: 7448, now: now, random: &random)
        #expect(announcement.tag == LANAnnouncement.Key(alice).tag(nonce: announcement.nonce, epoch: now / 300))
        // Another nonce, epoch or identity gives another tag.
        let key = LANAnnouncement.Key(alice)
        let nonce = [UInt8](repeating: 0x42, count: 16)
        let tags = [key.tag(nonce: nonce, epoch: 1), key.tag(nonce: nonce, epoch: 2), key.tag(nonce: [UInt8](repeating: 0x43, count: 16), epoch: 1),
                    LANAnnouncement.Key(bob).tag(nonce: nonce, epoch: 1)]
        #expect(Set(tags.map { $0 }).count == tags.count)
        #expect(tags.allSatisfy { $0.count == 16 })
    }

    @Test("a contact recognises the announcer; someone who does not know its key does not", .timeLimit(.minutes(3)))
    func recognition() {
        var random = SeededRandom(seed: 9)
        let announcement = LANAnnouncement.make(identity: alice, port: 7448, now: now, random: &random)
        #expect(announcement.recognise(among: [bob, alice, carol], now: now) == alice)
        #expect(announcement.recognise(among: [alice], now: now) == alice)
        #expect(announcement.recognise(among: [bob, carol], now: now) == nil)
        #expect(announcement.recognise(among: [MemberID](), now: now) == nil)
        #expect(announcement.recognise(among: [bob, alice].map(LANAnnouncement.Key.init), now: now) == alice)
        // A changed tag, nonce or a moved port-less forgery is not recognised.
        var tag = announcement.tag
        tag[0] ^= 1
        #expect(try! LANAnnouncement(nonce: announcement.nonce, tag: tag, port: 7448).recognise(among: [alice], now: now) == nil)
        var nonce = announcement.nonce
        nonce[15] ^= 0x80
        #expect(try! LANAnnouncement(nonce: nonce, tag: announcement.tag, port: 7448).recognise(among: [alice], now: now) == nil)
    }

    @Test("tags differ between announcements and between epochs: nothing links them without the key", .timeLimit(.minutes(3)))
    func unlinkable() {
        var random = SeededRandom(seed: 10)
        var nonces: Set<[UInt8]> = [], tags: Set<[UInt8]> = []
        for i in 0..<200 {
            let time = now + UInt64(i % 4) * 300
            let announcement = LANAnnouncement.make(identity: alice, port: 7448, now: time, random: &random)
            nonces.insert(announcement.nonce)
            tags.insert(announcement.tag)
            #expect(announcement.recognise(among: [alice], now: time) == alice)
        }
        #expect(nonces.count == 200 && tags.count == 200)
        // The same nonce in two epochs gives two tags.
        let key = LANAnnouncement.Key(alice)
        let nonce = [UInt8](repeating: 7, count: 16)
        #expect(key.tag(nonce: nonce, epoch: now / 300) != key.tag(nonce: nonce, epoch: now / 300 + 1))
    }

    @Test("the previous and the next epoch are accepted (clocks a little apart), older and later ones are refused", .timeLimit(.minutes(3)))
    func epochs() {
        var random = SeededRandom(seed: 11)
        let start = (now / 300) * 300
        let announcement = LANAnnouncement.make(identity: alice, port: 7448, now: start + 299, random: &random)
        #expect(announcement.recognise(among: [alice], now: start) == alice)
        #expect(announcement.recognise(among: [alice], now: start + 299) == alice)
        #expect(announcement.recognise(among: [alice], now: start + 300) == alice, "the previous epoch")
        #expect(announcement.recognise(among: [alice], now: start + 599) == alice, "the previous epoch")
        #expect(announcement.recognise(among: [alice], now: start + 600) == nil, "two epochs old")
        #expect(announcement.recognise(among: [alice], now: start + 10_000) == nil)
        #expect(announcement.recognise(among: [alice], now: start - 1) == alice, "made in the next epoch (the announcer's clock ahead)")
        #expect(announcement.recognise(among: [alice], now: start - 301) == nil, "made two epochs ahead")
        // Epoch 0 has no previous epoch (no underflow).
        let early = LANAnnouncement.make(identity: alice, port: 7448, now: 5, random: &random)
        #expect(early.recognise(among: [alice], now: 0) == alice)
        #expect(early.recognise(among: [alice], now: 300) == alice)
    }

    @Test("every truncation, extension, corruption of the header and random bytes decode to a typed error", .timeLimit(.minutes(3)))
    func decoderIsTotal() {
        var random = SeededRandom(seed: 12)
        let wire = LANAnnouncement.make(identity: alice, port: 7448, now: now, random: &random).wireBytes
        for length in 0..<wire.count {
            #expect(throws: LANAnnouncementError.self) { try LANAnnouncement(wireBytes: wire.prefix(length)) }
        }
        #expect(throws: LANAnnouncementError.wrongLength(45)) { try LANAnnouncement(wireBytes: wire + [0]) }
        #expect(throws: LANAnnouncementError.wrongLength(0)) { try LANAnnouncement(wireBytes: [UInt8]()) }
        for index in 0..<9 {
            var bad = wire
            bad[index] ^= 0x20
            #expect(throws: LANAnnouncementError.notAnAnnouncement) { try LANAnnouncement(wireBytes: bad) }
        }
        var version = wire
        version[9] = 2
        #expect(throws: LANAnnouncementError.unsupportedVersion(2)) { try LANAnnouncement(wireBytes: version) }
        #expect(throws: LANAnnouncementError.unsupportedVersion(2)) { try LANAnnouncement(wireBytes: Array(version.prefix(12))) }
        var zero = wire
        zero[42] = 0
        zero[43] = 0
        #expect(throws: LANAnnouncementError.self) { try LANAnnouncement(wireBytes: zero) }
        #expect(throws: LANAnnouncementError.self) { try LANAnnouncement(nonce: [1, 2], tag: wire, port: 1) }
        #expect(throws: LANAnnouncementError.self) { try LANAnnouncement(nonce: Array(wire.prefix(16)), tag: [], port: 1) }
        // Random bytes of every length up to 100, and 44 random bytes after the right header.
        var accepted = 0
        for round in 0..<5_000 {
            let length = round % 101
            let bytes = random.bytes(length)
            do {
                _ = try LANAnnouncement(wireBytes: bytes)
                accepted += 1
            } catch {}
            var headed = Array(wire.prefix(10)) + random.bytes(34)
            if round % 2 == 0 { headed = Array(headed.prefix(Int(random.next() % 44))) }
            if let announcement = try? LANAnnouncement(wireBytes: headed) {
                #expect(announcement.wireBytes == headed)
                #expect(announcement.recognise(among: [alice, bob], now: now) == nil)
            }
        }
        #expect(accepted == 0, "random bytes without the magic are never an announcement")
    }
}
