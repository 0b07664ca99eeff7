public import DCGKAEncoding
public import Sync
internal import Synchronization

/// The sending half of a secure link (NETWORK.md §12) carrying §11 sync messages, whatever
/// carries the link: WebSocket frames (relays) or TCP records (direct links).
public protocol SyncLink: AnyObject, Sendable {
    /// The authenticated identity at the other end.
    var peer: MemberID { get }
    /// Frames, seals and writes these messages in order. Concurrent callers take turns.
    func send(_ messages: [SyncMessage]) async throws
}

/// A link and the stream it reads from: what the device's sync driver runs over.
public protocol SyncChannel {
    associatedtype Link: SyncLink
    var link: Link { get }
    /// The sync messages the next record (a WebSocket frame, a TCP record) completes: possibly
    /// none; nil when the peer closed the link.
    mutating func receive() async throws -> [SyncMessage]?
}

/// A first-come, first-served turn for async writers (a lock that may be held across `await`).
final class TurnGate: Sendable {
    private struct State {
        var taken = false
        var waiting: [CheckedContinuation<Void, Never>] = []
    }
    private let state = Mutex(State())

    /// Waits for the turn.
    func enter() async {
        await withCheckedContinuation { (turn: CheckedContinuation<Void, Never>) in
            let now = state.withLock { state in
                if state.taken { state.waiting.append(turn); return false }
                state.taken = true
                return true
            }
            if now { turn.resume() }
        }
    }

    /// Hands the turn to the next waiter, if any.
    func leave() {
        let next = state.withLock { state -> CheckedContinuation<Void, Never>? in
            if state.waiting.isEmpty { state.taken = false; return nil }
            return state.waiting.removeFirst()
        }
        next?.resume()
    }
}
