public import DCGKAEncoding
public import Sync
public import LinkIO
internal import Synchronization

/// The end of a simulated link was reached: the link was cut (its message budget ran out) or
/// the other side closed it.
struct MemoryLinkCut: Error {}

/// One side of a link inside the simulator: what is sent is framed as on a real link (§11) and
/// read back through the same frame reader, so the framing is exercised too. A link may carry a
/// budget of messages, after which it is cut in both directions (a link cut mid-sync).
final class MemoryLink: SyncLink {
    let peer: MemberID
    private let outbound: AsyncStream<[UInt8]>.Continuation
    private let shared: Budget

    /// Messages both directions may still carry (nil: unlimited).
    final class Budget: Sendable {
        let left: Mutex<Int?>
        let ends: Mutex<[AsyncStream<[UInt8]>.Continuation]>
        init(_ left: Int?) {
            self.left = Mutex(left)
            ends = Mutex([])
        }
        func take(_ count: Int) -> Bool {
            left.withLock { left in
                guard let current = left else { return true }
                guard current >= count else { left = 0; return false }
                left = current - count
                return true
            }
        }
        func cut() { for end in ends.withLock({ $0 }) { end.finish() } }
    }

    init(peer: MemberID, outbound: AsyncStream<[UInt8]>.Continuation, budget: Budget) {
        self.peer = peer
        self.outbound = outbound
        shared = budget
    }

    func send(_ messages: [SyncMessage]) async throws {
        guard shared.take(messages.count) else {
            shared.cut()
            throw MemoryLinkCut()
        }
        outbound.yield(messages.flatMap(SyncFraming.frame))
    }

    /// This side is done: the other side's reads end.
    func close() { outbound.finish() }
}

struct MemoryChannel: SyncChannel {
    let link: MemoryLink
    var iterator: AsyncStream<[UInt8]>.AsyncIterator
    var reader = SyncFrameReader()

    mutating func receive() async throws -> [SyncMessage]? {
        guard let bytes = await iterator.next() else { return nil }
        reader.append(bytes)
        var messages: [SyncMessage] = []
        while let message = try reader.next() { messages.append(message) }
        return messages
    }

    /// Two connected ends: `a` talks to `b`. `budget`: messages before the link is cut.
    static func pair(_ a: MemberID, _ b: MemberID, budget: Int?) -> (MemoryChannel, MemoryChannel) {
        let (toB, toBContinuation) = AsyncStream<[UInt8]>.makeStream()
        let (toA, toAContinuation) = AsyncStream<[UInt8]>.makeStream()
        let shared = MemoryLink.Budget(budget)
        shared.ends.withLock { $0 = [toBContinuation, toAContinuation] }
        let sideA = MemoryChannel(link: MemoryLink(peer: b, outbound: toBContinuation, budget: shared), iterator: toA.makeAsyncIterator())
        let sideB = MemoryChannel(link: MemoryLink(peer: a, outbound: toAContinuation, budget: shared), iterator: toB.makeAsyncIterator())
        return (sideA, sideB)
    }
}
