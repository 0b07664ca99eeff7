import DCGKACrypto
import DCGKAEncoding
import GroupMessaging
import Testing

@Suite struct RatchetTests {
    @Test func bothSidesDeriveTheSameKeys() throws {
        var (a, b) = pair()
        let sent = try a.send(Array("hello".utf8), as: alice)
        #expect(sent.message.epoch == 1 && sent.message.index == 0)
        let r10 = b.receive(sent)
        #expect(r10 == .success(Array("hello".utf8)))
        // A third party who started the same epoch with a different secret cannot read it.
        var c = MessagingState(suite: .suite1)
        c.startEpoch(for: alice, epoch: 1, updateSecret: filled(0x12))
        let before = c
        let r15 = c.receive(sent)
        #expect(r15 == .failure(.authenticationFailed))
        #expect(c == before)
    }

    @Test func inOrderStream() throws {
        var (a, b) = pair()
        for n in 0..<50 {
            #expect(a.nextSendPosition(for: alice)! == (1, UInt64(n)))
            let sent = try a.send(plaintext(n), as: alice)
            #expect(sent.message.index == UInt64(n))
            let r25 = b.receive(sent)
            #expect(r25 == .success(plaintext(n)))
            #expect(b.skippedKeyCount(for: alice) == 0)
        }
        #expect(a.nextSendPosition(for: alice)! == (1, 50))
        #expect(a.nextSendPosition(for: bob) == nil)
    }

    @Test func outOfOrderWithinAnEpoch() throws {
        var (a, b) = pair()
        var sent: [Sent] = []
        for n in 0..<200 { sent.append(try a.send(plaintext(n), as: alice)) }
        var rng = SeededRandom(seed: 0xDCA)
        let order = Array(0..<200).shuffled(using: &rng)
        for n in order {
            let r39 = b.receive(sent[n])
            #expect(r39 == .success(plaintext(n)), "message \(n)")
        }
        #expect(b.skippedKeyCount(for: alice) == 0)
        // Every key has been used: nothing decrypts a second time.
        for n in [0, 57, 199] { let r43 = b.receive(sent[n]); #expect(r43 == .failure(.keyAlreadyUsed)) }
    }

    @Test func duplicateDeliveryLeavesStateUnchanged() throws {
        var (a, b) = pair()
        let m0 = try a.send(plaintext(0), as: alice)
        let m1 = try a.send(plaintext(1), as: alice)
        let m2 = try a.send(plaintext(2), as: alice)
        let r51 = b.receive(m0)
        #expect(r51 == .success(plaintext(0)))
        var snapshot = b
        let r53 = b.receive(m0)
        #expect(r53 == .failure(.keyAlreadyUsed))
        #expect(b == snapshot)
        // Duplicate of a message decrypted from the skipped store.
        let r56 = b.receive(m2)
        #expect(r56 == .success(plaintext(2)))
        let r57 = b.receive(m1)
        #expect(r57 == .success(plaintext(1)))
        snapshot = b
        let r59 = b.receive(m1)
        #expect(r59 == .failure(.keyAlreadyUsed))
        let r60 = b.receive(m2)
        #expect(r60 == .failure(.keyAlreadyUsed))
        #expect(b == snapshot)
    }

    @Test func skippedStoreIsBounded() throws {
        let configuration = MessagingConfiguration(maximumSkippedKeysPerSender: 5, maximumSkipPerMessage: 10)
        var (a, b) = pair(configuration: configuration)
        var sent: [Sent] = []
        for n in 0..<20 { sent.append(try a.send(plaintext(n), as: alice)) }

        // Jumping 11 past the next index is too far; 10 would be fine.
        var snapshot = b
        let r72 = b.receive(sent[11])
        #expect(r72 == .failure(.tooFarAhead))
        #expect(b == snapshot)

        // Skipping 8 keys (0...7) keeps only the newest 5 (3...7).
        let r76 = b.receive(sent[8])
        #expect(r76 == .success(plaintext(8)))
        #expect(b.skippedKeyCount(for: alice) == 5)
        for n in 0...2 {
            snapshot = b
            let r80 = b.receive(sent[n])
            #expect(r80 == .failure(.keyAlreadyUsed), "evicted \(n)")
            #expect(b == snapshot)
        }
        let r83 = b.receive(sent[3])
        #expect(r83 == .success(plaintext(3)))
        #expect(b.skippedKeyCount(for: alice) == 4)
        // Skipping 9 adds one key: 4, 5, 6, 7, 9.
        let r86 = b.receive(sent[10])
        #expect(r86 == .success(plaintext(10)))
        #expect(b.skippedKeyCount(for: alice) == 5)
        // Skipping 11...18 (8 keys) evicts 4...7, 9 and 11...13.
        let r89 = b.receive(sent[19])
        #expect(r89 == .success(plaintext(19)))
        #expect(b.skippedKeyCount(for: alice) == 5)
        for n in [4, 5, 6, 7, 9, 11, 12, 13] { let r91 = b.receive(sent[n]); #expect(r91 == .failure(.keyAlreadyUsed)) }
        for n in 14...18 { let r92 = b.receive(sent[n]); #expect(r92 == .success(plaintext(n))) }
        #expect(b.skippedKeyCount(for: alice) == 0)
    }

    @Test func tooFarAheadAtTheExactBound() throws {
        let configuration = MessagingConfiguration(maximumSkippedKeysPerSender: 1_000, maximumSkipPerMessage: 3)
        var (a, b) = pair(configuration: configuration)
        var sent: [Sent] = []
        for n in 0..<10 { sent.append(try a.send(plaintext(n), as: alice)) }
        let snapshot = b
        let r102 = b.receive(sent[4])
        #expect(r102 == .failure(.tooFarAhead))
        #expect(b == snapshot)
        let r104 = b.receive(sent[3])
        #expect(r104 == .success(plaintext(3)))
        let r105 = b.receive(sent[8])
        #expect(r105 == .failure(.tooFarAhead))
        let r106 = b.receive(sent[7])
        #expect(r106 == .success(plaintext(7)))
        for n in [0, 1, 2, 4, 5, 6] { let r107 = b.receive(sent[n]); #expect(r107 == .success(plaintext(n))) }
    }

    @Test func zeroSkippedKeysMeansNoOutOfOrder() throws {
        var (a, b) = pair(configuration: MessagingConfiguration(maximumSkippedKeysPerSender: 0))
        let m0 = try a.send(plaintext(0), as: alice)
        let m1 = try a.send(plaintext(1), as: alice)
        let r114 = b.receive(m1)
        #expect(r114 == .success(plaintext(1)))
        #expect(b.skippedKeyCount(for: alice) == 0)
        let r116 = b.receive(m0)
        #expect(r116 == .failure(.keyAlreadyUsed))
    }

    @Test func epochChange() throws {
        let configuration = MessagingConfiguration(maximumSkippedKeysPerSender: 4, maximumSkipPerMessage: 100)
        var (a, b) = pair(epoch: 3, configuration: configuration)
        var old: [Sent] = []
        for n in 0..<6 { old.append(try a.send(plaintext(n), as: alice)) }
        let r124 = b.receive(old[3])
        #expect(r124 == .success(plaintext(3)))  // skips 0, 1, 2
        #expect(b.skippedKeyCount(for: alice) == 3)

        // Not newer: ignored.
        let snapshot = b
        let r129 = b.startEpoch(for: alice, epoch: 3, updateSecret: filled(0x99))
        #expect(!r129)
        let r130 = b.startEpoch(for: alice, epoch: 2, updateSecret: filled(0x99))
        #expect(!r130)
        #expect(b == snapshot)

        let r133 = a.startEpoch(for: alice, epoch: 9, updateSecret: filled(0x22))
        #expect(r133)
        let r134 = b.startEpoch(for: alice, epoch: 9, updateSecret: filled(0x22))
        #expect(r134)
        #expect(a.nextSendPosition(for: alice)! == (9, 0))
        #expect(b.currentEpoch(of: alice) == 9)

        // The old chain is gone: a message of epoch 3 that was never skipped is undecryptable.
        var before = b
        let r140 = b.receive(old[4])
        #expect(r140 == .failure(.epochExpired))
        let r141 = b.receive(old[5])
        #expect(r141 == .failure(.epochExpired))
        let r142 = b.receive(old[3])
        #expect(r142 == .failure(.epochExpired))
        #expect(b == before)
        // Skipped keys of the old epoch still work.
        let r145 = b.receive(old[1])
        #expect(r145 == .success(plaintext(1)))
        #expect(b.skippedKeyCount(for: alice) == 2)  // 3:0, 3:2

        // The new epoch works, and its skipped keys evict the old epoch's first (oldest first).
        var new: [Sent] = []
        for n in 0..<5 { new.append(try a.send(plaintext(100 + n), as: alice)) }
        let r151 = b.receive(new[3])
        #expect(r151 == .success(plaintext(103)))  // skips 9:0, 9:1, 9:2 → evicts 3:0
        #expect(b.skippedKeyCount(for: alice) == 4)
        before = b
        let r154 = b.receive(old[0])
        #expect(r154 == .failure(.epochExpired))
        #expect(b == before)
        let r156 = b.receive(old[2])
        #expect(r156 == .success(plaintext(2)))
        for n in [0, 1, 2, 4] { let r157 = b.receive(new[n]); #expect(r157 == .success(plaintext(100 + n))) }
        #expect(b.skippedKeyCount(for: alice) == 0)
    }

    @Test func unknownEpoch() throws {
        var (a, b) = pair(epoch: 4)
        let m = try a.send(plaintext(0), as: alice)
        // Nobody started Carol's ratchet.
        var header = m.header
        header.sender = carol
        var snapshot = b
        let r168 = b.decrypt(m.message, header: header)
        #expect(r168 == .failure(.unknownEpoch))
        // An epoch newer than Alice's current one.
        let r170 = a.startEpoch(for: alice, epoch: 6, updateSecret: filled(0x33))
        #expect(r170)
        let future = try a.send(plaintext(1), as: alice)
        let r172 = b.receive(future)
        #expect(r172 == .failure(.unknownEpoch))
        #expect(b == snapshot)
        // A fresh state knows nothing.
        var fresh = MessagingState(suite: .suite1)
        let r176 = fresh.receive(m)
        #expect(r176 == .failure(.unknownEpoch))
        #expect(fresh.currentEpoch(of: alice) == nil)
        // After forgetting a removed member, nothing of it is left.
        let r179 = b.receive(m)
        #expect(r179 == .success(plaintext(0)))
        b.forget(alice)
        snapshot = b
        #expect(b.currentEpoch(of: alice) == nil)
        #expect(b.knownMembers.isEmpty)
        let r184 = b.receive(m)
        #expect(r184 == .failure(.unknownEpoch))
        #expect(b == snapshot)
        #expect(b == MessagingState(suite: .suite1))
    }

    @Test func encryptErrorsLeaveStateUnchanged() throws {
        var state = MessagingState(suite: .suite1)
        #expect(throws: MessagingError.noEpoch) {
            _ = try state.encrypt([1], as: alice) { testHeader(alice, epoch: $0, index: $1) }
        }
        state.startEpoch(for: alice, epoch: 1, updateSecret: filled(1))
        let snapshot = state
        #expect(throws: MessagingError.headerMismatch) {
            _ = try state.encrypt([1], as: alice) { testHeader(bob, epoch: $0, index: $1) }
        }
        #expect(throws: MessagingError.headerMismatch) {
            _ = try state.encrypt([1], as: alice) { testHeader(alice, epoch: $0 + 1, index: $1) }
        }
        #expect(throws: MessagingError.headerMismatch) {
            _ = try state.encrypt([1], as: alice) { testHeader(alice, epoch: $0, index: $1 + 1) }
        }
        let tooLong = [UInt8](repeating: 0, count: ApplicationCiphertext.maximumCiphertextLength - 15)
        #expect(throws: MessagingError.plaintextTooLong) {
            _ = try state.encrypt(tooLong, as: alice) { testHeader(alice, epoch: $0, index: $1) }
        }
        #expect(state == snapshot)
    }

    @Test func tamperedCiphertextOrHeaderFailsAuthentication() throws {
        var (a, b) = pair(epoch: 2)
        // Carol's ratchet at the same epoch, so a changed sender reaches a real chain.
        a.startEpoch(for: carol, epoch: 2, updateSecret: filled(0x77))
        b.startEpoch(for: carol, epoch: 2, updateSecret: filled(0x77))
        let m0 = try a.send(plaintext(0), as: alice)
        let m1 = try a.send(plaintext(1), as: alice)
        let snapshot = b

        func expectRejected(_ message: ApplicationCiphertext, _ header: ApplicationHeader, _ what: String) {
            let r222 = b.decrypt(message, header: header)
            #expect(r222 == .failure(.authenticationFailed), "\(what)")
            #expect(b == snapshot, "\(what)")
        }

        for position in [0, 5, m1.message.ciphertext.count - 17, m1.message.ciphertext.count - 1] {
            var message = m1.message
            message.ciphertext[position] ^= 0x01
            expectRejected(message, m1.header, "ciphertext byte \(position)")
        }
        var short = m1.message
        short.ciphertext = Array(short.ciphertext.prefix(10))
        expectRejected(short, m1.header, "truncated ciphertext")
        var extended = m1.message
        extended.ciphertext.append(0)
        expectRejected(extended, m1.header, "extended ciphertext")

        var h = m1.header; h.version = 2; expectRejected(m1.message, h, "version")
        h = m1.header; h.groupID = GroupID(filled(0x43)); expectRejected(m1.message, h, "group")
        h = m1.header; h.sender = carol; expectRejected(m1.message, h, "sender")
        h = m1.header; h.seq += 1; expectRejected(m1.message, h, "seq")
        h = m1.header; h.prev = filled(0x01); expectRejected(m1.message, h, "prev")
        h = m1.header; h.prev = nil; expectRejected(m1.message, h, "prev absent")
        h = m1.header; h.epoch = 1; expectRejected(m1.message, h, "header epoch only")
        h = m1.header; h.index = 0; expectRejected(m1.message, h, "header index only")
        // Index changed in both header and body: the key of index 0 does not open it, and the
        // chain is not advanced.
        var body = m1.message; body.index = 0
        h = m1.header; h.index = 0; expectRejected(body, h, "index")
        body = m1.message; body.index = 2
        h = m1.header; h.index = 2; expectRejected(body, h, "index ahead")
        // The body of message 0 under message 1's header, and the other way round.
        expectRejected(m0.message, m1.header, "swapped header")

        // Nothing was consumed: both still decrypt.
        let r256 = b.receive(m1)
        #expect(r256 == .success(plaintext(1)))
        let r257 = b.receive(m0)
        #expect(r257 == .success(plaintext(0)))
        // Tampering with a skipped-store lookup leaves the store alone too.
        let m2 = try a.send(plaintext(2), as: alice)
        let m3 = try a.send(plaintext(3), as: alice)
        let r261 = b.receive(m3)
        #expect(r261 == .success(plaintext(3)))
        let withSkipped = b
        var bad = m2.message
        bad.ciphertext[0] ^= 0x80
        let r265 = b.decrypt(bad, header: m2.header)
        #expect(r265 == .failure(.authenticationFailed))
        #expect(b == withSkipped)
        let r267 = b.receive(m2)
        #expect(r267 == .success(plaintext(2)))
    }

    @Test func forwardSecrecyOfReceiver() throws {
        let secret = filled(0x44)
        var (a, b) = pair(epoch: 1, secret: secret)
        let reference = referenceChain(secret: secret, count: 6)
        var sent: [Sent] = []
        for n in 0..<6 { sent.append(try a.send(plaintext(n), as: alice)) }

        let r277 = b.receive(sent[0])
        #expect(r277 == .success(plaintext(0)))
        let r278 = b.receive(sent[1])
        #expect(r278 == .success(plaintext(1)))
        var snapshot = b  // taken after decrypting message 1
        let r280 = snapshot.receive(sent[1])
        #expect(r280 == .failure(.keyAlreadyUsed))
        let r281 = snapshot.receive(sent[0])
        #expect(r281 == .failure(.keyAlreadyUsed))
        let encoded = b.wireBytes
        for i in 0...1 {
            #expect(!contains(encoded, reference[i].key), "key_\(i)")
            #expect(!contains(encoded, reference[i].chain), "chain_\(i)")
        }
        #expect(!contains(encoded, secret.bytes))
        #expect(contains(encoded, reference[2].chain))  // the live chain is there, as it must be

        // Out of order: 4 arrives, keys 2 and 3 are skipped; then 2 is used.
        let r291 = b.receive(sent[4])
        #expect(r291 == .success(plaintext(4)))
        let r292 = b.receive(sent[2])
        #expect(r292 == .success(plaintext(2)))
        snapshot = b
        let r294 = snapshot.receive(sent[2])
        #expect(r294 == .failure(.keyAlreadyUsed))
        let r295 = snapshot.receive(sent[4])
        #expect(r295 == .failure(.keyAlreadyUsed))
        let encoded2 = b.wireBytes
        for i in [0, 1, 2, 4] { #expect(!contains(encoded2, reference[i].key), "key_\(i)") }
        for i in 0...4 { #expect(!contains(encoded2, reference[i].chain), "chain_\(i)") }
        #expect(contains(encoded2, reference[3].key))  // still skipped, legitimately kept

        // After a new epoch and using the last skipped key, nothing of epoch 1 is left.
        b.startEpoch(for: alice, epoch: 7, updateSecret: filled(0x45))
        let r303 = b.receive(sent[3])
        #expect(r303 == .success(plaintext(3)))
        let encoded3 = b.wireBytes
        for i in 0..<6 {
            #expect(!contains(encoded3, reference[i].key))
            #expect(!contains(encoded3, reference[i].chain))
        }
    }

    @Test func forwardSecrecyOfSender() throws {
        let secret = filled(0x46)
        var (a, _) = pair(epoch: 1, secret: secret)
        let reference = referenceChain(secret: secret, count: 4)
        for n in 0..<3 { _ = try a.send(plaintext(n), as: alice) }
        let encoded = a.wireBytes
        for i in 0..<3 {
            #expect(!contains(encoded, reference[i].key))
            #expect(!contains(encoded, reference[i].chain))
        }
        #expect(contains(encoded, reference[3].chain))
        #expect(!contains(encoded, secret.bytes))
    }

    @Test func knownAnswerFollowsTheFormulas() throws {
        let secret = filled(0x55)
        var (a, b) = pair(epoch: 12, secret: secret)
        let suite = Suite1()
        let chain0 = suite.kdf(ikm: secret.bytes, salt: [], info: Array("DCGKA message chain".utf8), length: 32)
        let out0 = suite.kdf(ikm: chain0, salt: [], info: Array("DCGKA message key".utf8), length: 32 + 12 + 32)
        let chain1 = Array(out0[44...])
        let out1 = suite.kdf(ikm: chain1, salt: [], info: Array("DCGKA message key".utf8), length: 76)
        // HKDF with an empty salt equals HKDF with 32 zero bytes of salt (RFC 5869).
        #expect(chain0 == suite.kdf(ikm: secret.bytes, salt: [UInt8](repeating: 0, count: 32),
                                    info: Array("DCGKA message chain".utf8), length: 32))
        #expect(MessageRatchet.initialChain(updateSecret: secret, suite: suite).bytes == chain0)
        let step = MessageRatchet.step(Bytes32(chain0)!, suite: suite)
        #expect(step.key.key.bytes == Array(out0[0..<32]))
        #expect(step.key.nonce == Array(out0[32..<44]))
        #expect(step.next.bytes == chain1)

        // The AAD layout.
        let header = testHeader(alice, epoch: 12, index: 300)
        var expectedAAD = Array("DCGKA message".utf8) + [1, 1] + testGroup.bytes + alice.bytes
        expectedAAD += [UInt8(header.seq & 0x7F) | 0x80, UInt8(header.seq >> 7)]  // seq 313 as LEB128
        expectedAAD += header.prev!.bytes + [12] + [0xAC, 0x02]
        #expect(header.seq == 313)
        #expect(header.associatedData == expectedAAD)
        var first = header
        first.seq = 1
        first.prev = nil
        #expect(first.associatedData == Array("DCGKA message".utf8) + [1, 1] + testGroup.bytes + alice.bytes
                + [1, 12, 0xAC, 0x02])

        // The ciphertexts are ChaCha20-Poly1305 under key_i/nonce_i with that AAD.
        let m0 = try a.send(plaintext(0), as: alice)
        let m1 = try a.send(plaintext(1), as: alice)
        #expect(m0.message.ciphertext == suite.aeadSeal(
            key: Array(out0[0..<32]), nonce: Array(out0[32..<44]), aad: m0.header.associatedData, plaintext: plaintext(0)))
        #expect(m1.message.ciphertext == suite.aeadSeal(
            key: Array(out1[0..<32]), nonce: Array(out1[32..<44]), aad: m1.header.associatedData, plaintext: plaintext(1)))
        #expect(m0.message.ciphertext.count == plaintext(0).count + 16)
        let r363 = b.receive(m1)
        #expect(r363 == .success(plaintext(1)))
        let r364 = b.receive(m0)
        #expect(r364 == .success(plaintext(0)))
    }

    @Test func senderAndReceiverShareOneRecordPerMember() throws {
        // Bob both sends (his own epochs) and receives Alice's; the two are independent.
        var (a, b) = pair()
        a.startEpoch(for: bob, epoch: 2, updateSecret: filled(0x66))
        b.startEpoch(for: bob, epoch: 2, updateSecret: filled(0x66))
        let fromBob = try b.send(plaintext(1), as: bob)
        let fromAlice = try a.send(plaintext(2), as: alice)
        let r374 = a.receive(fromBob)
        #expect(r374 == .success(plaintext(1)))
        let r375 = b.receive(fromAlice)
        #expect(r375 == .success(plaintext(2)))
        #expect(a.knownMembers == [alice, bob])
        #expect(b.nextSendPosition(for: bob)! == (2, 1))
    }
}
