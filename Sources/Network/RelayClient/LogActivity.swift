internal import Synchronization

/// Tells the live links of this process that a device's log grew here (envelopes that arrived
/// over one link, or a message sent by this process), so each pushes at once instead of at its
/// next poll. The poll stays, for what other processes on the same home write.
public final class LogActivity: Sendable {
    public static let shared = LogActivity()

    private struct State {
        var next = 0
        var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
    }
    private let state = Mutex(State())

    /// Wakes every link waiting in ``wait(upTo:)``.
    public func changed() {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Returns at the next ``changed()`` or after `duration`, whichever comes first (or at
    /// cancellation).
    func wait(upTo duration: Duration) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { try? await Task.sleep(for: duration) }
            group.addTask { await self.nextChange() }
            await group.next()
            group.cancelAll()
        }
    }

    private func nextChange() async {
        let key = state.withLock { state -> Int in
            state.next += 1
            return state.next
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let cancelled = state.withLock { state -> Bool in
                    if Task.isCancelled { return true }
                    state.waiters[key] = continuation
                    return false
                }
                if cancelled { continuation.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { $0.waiters.removeValue(forKey: key) }
            waiter?.resume()
        }
    }
}
