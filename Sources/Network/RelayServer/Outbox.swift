internal import Synchronization
public import Sync

/// What a relay has to send on one link, with the bytes it holds counted (NETWORK.md §13.5): a
/// peer that does not read is cut off once the pending bytes pass the limit, so a slow reader
/// can never grow the relay's memory. One writer task drains it.
final class Outbox: Sendable {
    struct State {
        var queue: [[UInt8]] = []
        var pendingBytes = 0
        var finished = false
        var overflowed = false
        var waiter: CheckedContinuation<Void, Never>?
    }

    let limit: Int
    private let state = Mutex(State())

    init(limit: Int) { self.limit = limit }

    /// Queues a frame; false (and the outbox is finished) when the peer is too far behind.
    @discardableResult
    func enqueue(_ message: SyncMessage) -> Bool {
        let frame = SyncFraming.frame(message)
        let (accepted, waiter) = state.withLock { state -> (Bool, CheckedContinuation<Void, Never>?) in
            guard !state.finished else { return (false, nil) }
            if state.pendingBytes + frame.count > limit {
                state.finished = true
                state.overflowed = true
                let waiter = state.waiter
                state.waiter = nil
                return (false, waiter)
            }
            state.queue.append(frame)
            state.pendingBytes += frame.count
            let waiter = state.waiter
            state.waiter = nil
            return (true, waiter)
        }
        waiter?.resume()
        return accepted
    }

    /// No more frames after what is queued.
    func finish() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.finished = true
            let waiter = state.waiter
            state.waiter = nil
            return waiter
        }
        waiter?.resume()
    }

    var overflowed: Bool { state.withLock { $0.overflowed } }
    var pendingBytes: Int { state.withLock { $0.pendingBytes } }

    /// The queued frames, waiting until there are some; nil once finished and drained (or
    /// overflowed: nothing more is sent to a slow reader).
    func next() async -> [[UInt8]]? {
        while true {
            enum Step { case frames([[UInt8]]), done, wait }
            let step = state.withLock { state -> Step in
                if state.overflowed { return .done }
                if !state.queue.isEmpty {
                    let frames = state.queue
                    state.queue = []
                    return .frames(frames)
                }
                return state.finished ? .done : .wait
            }
            switch step {
            case .frames(let frames): return frames
            case .done: return nil
            case .wait:
                await withCheckedContinuation { continuation in
                    let resumeNow = state.withLock { state -> Bool in
                        if state.finished || !state.queue.isEmpty { return true }
                        state.waiter = continuation
                        return false
                    }
                    if resumeNow { continuation.resume() }
                }
            }
        }
    }

    /// The writer sent these bytes.
    func sent(_ bytes: Int) { state.withLock { $0.pendingBytes -= bytes } }
}
