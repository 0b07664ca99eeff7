import DCGKACrypto
import DCGKAEncoding
import GroupMessaging
import Testing

func filled(_ byte: UInt8) -> Bytes32 { Bytes32([UInt8](repeating: byte, count: 32))! }

func member(_ byte: UInt8) -> MemberID { MemberID(filled(byte)) }

let alice = member(0xA1)
let bob = member(0xB2)
let carol = member(0xC3)
let testGroup = GroupID(filled(0x42))

/// A deterministic header for `sender`'s message at `(epoch, index)`.
func testHeader(_ sender: MemberID, epoch: UInt64, index: UInt64) -> ApplicationHeader {
    let seq = epoch + 1 + index
    var prevBytes = [UInt8](repeating: 0x5A, count: 32)
    prevBytes[0] = UInt8(truncatingIfNeeded: seq)
    return ApplicationHeader(
        version: 1, suite: .suite1, groupID: testGroup, sender: sender,
        seq: seq, prev: seq == 1 ? nil : Bytes32(prevBytes)!, epoch: epoch, index: index)
}

/// A message as it travels: the body plus the header the receiver rebuilds from the envelope.
struct Sent {
    var message: ApplicationCiphertext
    var header: ApplicationHeader
}

func plaintext(_ n: Int) -> [UInt8] { Array("message #\(n)".utf8) }

// Note: `#expect` expands its argument into closures, so a mutating call such as
// `state.receive(m)` cannot appear inside it; the tests bind the result first.
extension MessagingState {
    mutating func send(_ text: [UInt8], as me: MemberID) throws -> Sent {
        let message = try encrypt(text, as: me) { epoch, index in testHeader(me, epoch: epoch, index: index) }
        return Sent(message: message, header: testHeader(me, epoch: message.epoch, index: message.index))
    }

    mutating func receive(_ sent: Sent) -> Result<[UInt8], UndecryptableReason> {
        decrypt(sent.message, header: sent.header)
    }
}

/// Alice's and Bob's states, both having started Alice's epoch `epoch` with the same secret.
func pair(
    epoch: UInt64 = 1, secret: Bytes32 = filled(0x11), configuration: MessagingConfiguration = .init()
) -> (sender: MessagingState, receiver: MessagingState) {
    var a = MessagingState(suite: .suite1, configuration: configuration)
    var b = MessagingState(suite: .suite1, configuration: configuration)
    let startedA = a.startEpoch(for: alice, epoch: epoch, updateSecret: secret)
    let startedB = b.startEpoch(for: alice, epoch: epoch, updateSecret: secret)
    #expect(startedA && startedB)
    return (a, b)
}

/// True when `needle` occurs as a contiguous run in `haystack`.
func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
    guard !needle.isEmpty, haystack.count >= needle.count else { return needle.isEmpty }
    for start in 0...(haystack.count - needle.count) where haystack[start] == needle[0] {
        if Array(haystack[start..<start + needle.count]) == needle { return true }
    }
    return false
}

/// `(key_i, nonce_i, chain_i)` for i in 0..<count, computed straight from the §7 formulas.
func referenceChain(secret: Bytes32, count: Int) -> [(key: [UInt8], nonce: [UInt8], chain: [UInt8])] {
    let suite = Suite1()
    var chain = suite.kdf(ikm: secret.bytes, salt: [], info: Array("DCGKA message chain".utf8), length: 32)
    var out: [(key: [UInt8], nonce: [UInt8], chain: [UInt8])] = []
    for _ in 0..<count {
        let derived = suite.kdf(ikm: chain, salt: [], info: Array("DCGKA message key".utf8), length: 76)
        out.append((Array(derived[0..<32]), Array(derived[32..<44]), chain))
        chain = Array(derived[44..<76])
    }
    return out
}
