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
                group.addTask { await keepFollowing(relay) { onStatus(relay, $0) } }
            }
        }
    }

    /// One relay's live link until cancelled (``follow(_:onChange:)``), reconnecting with
    /// ``Backoff``. `onStatus` hears nil while the link is up and brings news, a sentence when it
    /// failed or ended.
    public func keepFollowing(_ relay: RelayAddress, onStatus: @escaping @Sendable (String?) -> Void) async {
        var backoff = Backoff()
        var random = SystemRandomNumberGenerator()
        while !Task.isCancelled {
            let started = ContinuousClock.now
            do {
                try await follow(relay) { _ in onStatus(nil) }
                onStatus("the relay closed the link")
            } catch {
                onStatus("\(error)")
            }
            // A link that lasted a while was healthy: start the backoff over.
            if started.duration(to: .now) > .seconds(10) { backoff.reset() }
            try? await Task.sleep(for: .seconds(backoff.next(using: &random)))
        }
    }
}

extension RelayClient {
    /// `dcgka sync`: a pass with every relay, again while one brought envelopes new here, so
    /// each relay gets what the others brought (NETWORK.md §14.1); at most three rounds (what is
    /// left travels on the next sync). One report per relay, its counts summed over the rounds;
    /// `noted` hears how each pass ended.
    public func syncAll(
        _ relays: [RelayAddress], timeout: Duration = .seconds(60), noted: (RelayAddress, String?) -> Void = { _, _ in }
    ) async -> [SyncReport] {
        var reports = relays.map { SyncReport(peer: $0.description) }
        for round in 0..<3 {
            var news = 0
            for (index, relay) in relays.enumerated() {
                do {
                    let report = try await sync(with: relay, timeout: timeout)
                    reports[index].add(report)
                    reports[index].error = nil
                    news += report.new
                    noted(relay, nil)
                } catch {
                    reports[index].error = "\(error)"
                    noted(relay, "\(error)")
                }
            }
            if relays.count < 2 || news == 0 || round == 2 { break }
        }
        return reports
    }
}
