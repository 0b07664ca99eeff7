public import Device
public import Sync
internal import DCGKACrypto

/// Capped exponential backoff with full jitter (NETWORK.md §13.5): the n-th retry waits a
/// uniformly random time in `[0, min(cap, base · 2^n)]`, so clients refused together do not
/// come back together.
public struct Backoff: Sendable {
    public var base: Double
    public var cap: Double
    public private(set) var attempt = 0

    public init(base: Double = 0.5, cap: Double = 30) {
        self.base = base
        self.cap = cap
    }

    /// The next wait in seconds.
    public mutating func next(using random: inout some RandomNumberGenerator) -> Double {
        let ceiling = min(cap, base * Double(1 << min(attempt, 30)))
        attempt += 1
        return Double.random(in: 0...ceiling, using: &random)
    }

    public mutating func reset() { attempt = 0 }
}

extension RelayClient {
    /// Keeps a live link to every relay until cancelled: each link syncs, subscribes and pushes
    /// (``follow(_:onChange:)``); a link that fails or is refused is retried with ``Backoff``.
    /// `onStatus` hears of every connection and failure, for a status line.
    public func followAll(_ relays: [RelayAddress], onStatus: @escaping @Sendable (RelayAddress, String?) -> Void) async {
        await withTaskGroup(of: Void.self) { group in
            for relay in relays {
                group.addTask {
                    var backoff = Backoff()
                    var random = SystemRandomNumberGenerator()
                    while !Task.isCancelled {
                        let started = ContinuousClock.now
                        do {
                            try await follow(relay) { _ in onStatus(relay, nil) }
                        } catch {
                            onStatus(relay, "\(error)")
                        }
                        // A link that lasted a while was healthy: start the backoff over.
                        if started.duration(to: .now) > .seconds(10) { backoff.reset() }
                        try? await Task.sleep(for: .seconds(backoff.next(using: &random)))
                    }
                }
            }
        }
    }
}
