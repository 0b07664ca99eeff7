internal import Synchronization
public import Sync

/// What a relay has to send on one link, with the bytes it holds counted (NETWORK.md §13.5). The
/// link's own answers wait for room (``enqueueWhenRoom(_:)``: the relay reads nothing more from a
/// peer that is behind, so a large answer streams at the reader's pace); what other links bring
/// (pushes) cannot wait, and a peer that falls more than the limit behind is cut off
/// (``onOverflow`` closes its connection at once). Either way a slow reader can never grow the
/// relay's memory. One writer task drains it.
final class Outbox: Sendable {
    struct State {
        var queue: [[UInt8]] = []
        var pendingBytes = 0
        /// Bytes the writer sent so far (progress, for the stall check).
        var sentBytes = 0
        var finished = false
        var overflowed = false
        var waiter: CheckedContinuation<Void, Never>?
        /// The link's reader, waiting for room for its next answer.
        var roomWaiter: CheckedContinuation<Void, Never>?
    }

    let limit: Int
    private let onOverflow: @Sendable () -> Void
    private let state = Mutex(State())

    init(limit: Int, onOverflow: @escaping @Sendable () -> Void = {}) {
        self.limit = limit
        self.onOverflow = onOverflow
    }

    enum Queued {
        case queued(CheckedContinuation<Void, Never>?)
        case finished
        case full
    }

    /// Queues `frame` if it fits (nothing is pending, or it stays within the limit) and hands
    /// back the writer to wake.
    private func tryQueue(_ frame: [UInt8]) -> Queued {
        state.withLock { state -> Queued in
            guard !state.finished else { return .finished }
            guard state.pendingBytes == 0 || state.pendingBytes + frame.count <= limit else { return .full }
            state.queue.append(frame)
            state.pendingBytes += frame.count
            let waiter = state.waiter
            state.waiter = nil
            return .queued(waiter)
        }
    }

    /// Queues a frame; false (and the outbox is finished, the peer cut off) when the peer is too
    /// far behind. A frame always fits when nothing is pending.
    @discardableResult
    func enqueue(_ message: SyncMessage) -> Bool {
        switch tryQueue(SyncFraming.frame(message)) {
        case .queued(let waiter):
            waiter?.resume()
            return true
        case .finished:
            return false
        case .full:
            overflow()
            return false
        }
    }

    /// Queues a frame once the peer has room for it (nothing pending, or within the limit);
    /// false once the outbox is finished.
    func enqueueWhenRoom(_ message: SyncMessage) async -> Bool {
        let frame = SyncFraming.frame(message)
        while true {
            switch tryQueue(frame) {
            case .queued(let waiter):
                waiter?.resume()
                return true
            case .finished:
                return false
            case .full:
                await withCheckedContinuation { continuation in
                    let resumeNow = state.withLock { state -> Bool in
                        if state.finished || state.pendingBytes == 0 || state.pendingBytes + frame.count <= limit { return true }
                        state.roomWaiter = continuation
                        return false
                    }
                    if resumeNow { continuation.resume() }
                }
            }
        }
    }

    /// Cuts the peer off: nothing more is sent, waiters return, ``onOverflow`` runs once.
    func overflow() {
        let (first, waiters) = state.withLock { state -> (Bool, [CheckedContinuation<Void, Never>]) in
            let first = !state.overflowed
            state.finished = true
            state.overflowed = true
            let waiters = [state.waiter, state.roomWaiter].compactMap { $0 }
            state.waiter = nil
            state.roomWaiter = nil
            return (first, waiters)
        }
        for waiter in waiters { waiter.resume() }
        if first { onOverflow() }
    }

    /// No more frames after what is queued.
    func finish() {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.finished = true
            let waiters = [state.waiter, state.roomWaiter].compactMap { $0 }
            state.waiter = nil
            state.roomWaiter = nil
            return waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    var overflowed: Bool { state.withLock { $0.overflowed } }
    var pendingBytes: Int { state.withLock { $0.pendingBytes } }
    var sentBytes: Int { state.withLock { $0.sentBytes } }

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
    func sent(_ bytes: Int) {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.pendingBytes -= bytes
            state.sentBytes += bytes
            let waiter = state.roomWaiter
            state.roomWaiter = nil
            return waiter
        }
        waiter?.resume()
    }
}
