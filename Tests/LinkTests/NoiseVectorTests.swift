import Crypto
import DCGKACrypto
import DCGKATestSupport
import Foundation
import Testing
@testable import Link

/// The published test vectors of `Noise_XX_25519_ChaChaPoly_SHA256` (cacophony, snow, noise-c),
/// copied into `Vectors/noise-xx-25519-chachapoly-sha256.json` with their source commits.
struct NoiseVectorFile: Decodable {
    struct Source: Decodable {
        var repository: String
        var path: String
        var commit: String
        var vectors: Int
    }

    struct Message: Decodable {
        var payload: String
        var ciphertext: String
    }

    struct Vector: Decodable {
        var source: String
        var protocolName: String
        var initPrologue: String
        var initStatic: String
        var initEphemeral: String
        var respPrologue: String
        var respStatic: String
        var respEphemeral: String
        var handshakeHash: String?
        var messages: [Message]
    }

    var description: String
    var protocolName: String
    var sources: [Source]
    var vectors: [Vector]

    static let url = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()
        .appendingPathComponent("Vectors/noise-xx-25519-chachapoly-sha256.json")

    static func load() throws -> NoiseVectorFile {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try decoder.decode(NoiseVectorFile.self, from: Data(contentsOf: url))
    }
}

@Suite("Noise_XX_25519_ChaChaPoly_SHA256 against the published vectors")
struct NoiseVectorTests {
    static func key(_ hexString: String) throws -> Curve25519.KeyAgreement.PrivateKey {
        try Curve25519.KeyAgreement.PrivateKey(rawRepresentation: hex(hexString))
    }

    @Test("the vector file names its sources and holds only this protocol")
    func file() throws {
        let file = try NoiseVectorFile.load()
        #expect(file.protocolName == "Noise_XX_25519_ChaChaPoly_SHA256")
        #expect(file.sources.count == 3)
        for source in file.sources {
            #expect(source.commit.count == 40)
            #expect(file.vectors.filter { source.repository.hasSuffix("/" + $0.source) }.count == source.vectors)
        }
        #expect(file.vectors.count == file.sources.reduce(0) { $0 + $1.vectors })
        #expect(file.vectors.allSatisfy { $0.protocolName == file.protocolName && $0.messages.count > 3 })
        #expect(file.vectors.contains { $0.handshakeHash != nil })
    }

    @Test("every vector: each handshake message, the handshake hash, then transport both ways")
    func vectors() throws {
        let file = try NoiseVectorFile.load()
        #expect(!file.vectors.isEmpty)
        for vector in file.vectors {
            try run(vector)
        }
    }

    func run(_ vector: NoiseVectorFile.Vector) throws {
        let name = vector.source
        var initiator = NoiseXXHandshakeState(
            initiator: true, prologue: hex(vector.initPrologue),
            localStatic: try Self.key(vector.initStatic), localEphemeral: try Self.key(vector.initEphemeral))
        var responder = NoiseXXHandshakeState(
            initiator: false, prologue: hex(vector.respPrologue),
            localStatic: try Self.key(vector.respStatic), localEphemeral: try Self.key(vector.respEphemeral))

        // The suites' convention: message i is the initiator's when i is even.
        for (i, message) in vector.messages.prefix(NoiseXXHandshakeState.messageCount).enumerated() {
            let payload = hex(message.payload)
            let ciphertext: [UInt8]
            let received: [UInt8]
            if i % 2 == 0 {
                ciphertext = try initiator.writeMessage(payload: payload)
                received = try responder.readMessage(ciphertext)
            } else {
                ciphertext = try responder.writeMessage(payload: payload)
                received = try initiator.readMessage(ciphertext)
            }
            #expect(ciphertext == hex(message.ciphertext), "\(name): handshake message \(i)")
            #expect(received == payload, "\(name): handshake payload \(i)")
        }
        #expect(initiator.isComplete && responder.isComplete, "\(name)")
        #expect(initiator.remoteStatic == responder.localStaticPublicKey, "\(name)")
        #expect(responder.remoteStatic == initiator.localStaticPublicKey, "\(name)")
        #expect(initiator.handshakeHash == responder.handshakeHash, "\(name)")
        if let handshakeHash = vector.handshakeHash {
            #expect(initiator.handshakeHash == hex(handshakeHash), "\(name): handshake hash")
        }

        var (initiatorSend, initiatorReceive) = initiator.split()
        var (responderSend, responderReceive) = responder.split()
        for (i, message) in vector.messages.enumerated().dropFirst(NoiseXXHandshakeState.messageCount) {
            let payload = hex(message.payload)
            let ciphertext: [UInt8]
            let received: [UInt8]
            if i % 2 == 0 {
                ciphertext = try initiatorSend.encrypt(ad: [], plaintext: payload[...])
                received = try responderReceive.decrypt(ad: [], ciphertext: ciphertext[...])
            } else {
                ciphertext = try responderSend.encrypt(ad: [], plaintext: payload[...])
                received = try initiatorReceive.decrypt(ad: [], ciphertext: ciphertext[...])
            }
            #expect(ciphertext == hex(message.ciphertext), "\(name): transport message \(i)")
            #expect(received == payload, "\(name): transport payload \(i)")
        }
    }
}

@Suite("Noise building blocks")
struct NoisePrimitiveTests {
    @Test("the nonce is 4 zero bytes then the counter in little-endian")
    func nonceLayout() {
        #expect(NoiseCipherState.nonceBytes(0) == [UInt8](repeating: 0, count: 12))
        #expect(NoiseCipherState.nonceBytes(0x0102_0304_0506_0708) == [0, 0, 0, 0, 8, 7, 6, 5, 4, 3, 2, 1])
    }

    @Test("a protocol name of 32 bytes is h itself; a longer one is hashed")
    func protocolName() {
        let state = NoiseSymmetricState(protocolName: NoiseXXHandshakeState.protocolName)
        #expect(NoiseXXHandshakeState.protocolName.count == 32)
        #expect(state.hash == NoiseXXHandshakeState.protocolName)
        let short = NoiseSymmetricState(protocolName: Array("Noise_N".utf8))
        #expect(short.hash == Array("Noise_N".utf8) + [UInt8](repeating: 0, count: 25))
        let long = Array("Noise_XXpsk3_25519_ChaChaPoly_BLAKE2s".utf8)
        #expect(NoiseSymmetricState(protocolName: long).hash == Array(SHA256.hash(data: long)))
    }

    @Test("Noise's HKDF is RFC 5869 HKDF with the chaining key as salt")
    func hkdf() {
        let ck = (0..<32).map { UInt8($0) }
        let ikm = (100..<140).map { UInt8($0) }
        let outputs = NoiseSymmetricState.hkdf(chainingKey: ck, inputKeyMaterial: ikm, outputs: 3)
        let reference = HKDF<SHA256>.deriveKey(
            inputKeyMaterial: SymmetricKey(data: ikm), salt: ck, info: [], outputByteCount: 96
        ).withUnsafeBytes { Array($0) }
        #expect(outputs.flatMap { $0 } == reference)
    }

    @Test("nonce 2^64 − 1 is never used")
    func nonceExhaustion() throws {
        var sender = NoiseCipherState(key: [UInt8](repeating: 7, count: 32))
        var receiver = NoiseCipherState(key: [UInt8](repeating: 7, count: 32))
        sender.setNonce(UInt64.max - 1)
        receiver.setNonce(UInt64.max - 1)
        let last = try sender.encrypt(ad: [], plaintext: [1, 2, 3][...])
        #expect(try receiver.decrypt(ad: [], ciphertext: last[...]) == [1, 2, 3])
        #expect(throws: LinkError.nonceExhausted) { try sender.encrypt(ad: [], plaintext: [1][...]) }
        #expect(throws: LinkError.nonceExhausted) { try receiver.decrypt(ad: [], ciphertext: last[...]) }
    }

    @Test("a failed decryption does not advance the nonce")
    func failedDecryptionKeepsNonce() throws {
        var sender = NoiseCipherState(key: [UInt8](repeating: 9, count: 32))
        var receiver = NoiseCipherState(key: [UInt8](repeating: 9, count: 32))
        var message = try sender.encrypt(ad: [], plaintext: [5, 6][...])
        message[0] ^= 1
        #expect(throws: LinkError.decryptionFailed) { try receiver.decrypt(ad: [], ciphertext: message[...]) }
        #expect(receiver.nonce == 0)
        message[0] ^= 1
        #expect(try receiver.decrypt(ad: [], ciphertext: message[...]) == [5, 6])
    }

    @Test("handshake messages over 65535 bytes are refused on write and on read")
    func messageLimit() throws {
        var rng = SeededRandom(seed: 1)
        var initiator = LinkFixtures.noiseState(initiator: true, random: &rng)
        #expect(throws: LinkError.messageTooLarge(count: 65536)) {
            try initiator.writeMessage(payload: [UInt8](repeating: 0, count: 65536 - 32))
        }
        var fresh = LinkFixtures.noiseState(initiator: true, random: &rng)
        #expect(try fresh.writeMessage(payload: [UInt8](repeating: 0, count: 65535 - 32)).count == 65535)
        var responder = LinkFixtures.noiseState(initiator: false, random: &rng)
        #expect(throws: LinkError.messageTooLarge(count: 65536)) {
            try responder.readMessage([UInt8](repeating: 1, count: 65536))
        }
    }

    @Test("every X25519 key of small order gives an all-zero DH, refused as lowOrderKey")
    func lowOrderKeys() throws {
        var rng = SeededRandom(seed: 2)
        for point in LinkFixtures.smallOrderX25519 {
            var responder = LinkFixtures.noiseState(initiator: false, random: &rng)
            #expect(try responder.readMessage(point) == [])
            #expect(throws: LinkError.lowOrderKey) { try responder.writeMessage(payload: []) }
        }
    }
}
