/// A token bucket over an injected clock (seconds): `rate` tokens a second up to `burst`.
public struct TokenBucket: Sendable, Equatable {
    public let rate: Double
    public let burst: Double
    public private(set) var tokens: Double
    public private(set) var updatedAt: Double

    public init(rate: Double, burst: Double, now: Double) {
        self.rate = rate
        self.burst = burst
        tokens = burst
        updatedAt = now
    }

    /// Takes `cost` tokens if there are enough at `now`. A cost above the burst (one message
    /// carrying a backlog larger than the burst) passes once the bucket is full and leaves it in
    /// debt, repaid at `rate` before anything else passes: otherwise it could never pass, and the
    /// rate still holds over time.
    public mutating func take(_ cost: Double = 1, now: Double) -> Bool {
        if now > updatedAt {
            tokens = min(burst, tokens + (now - updatedAt) * rate)
            updatedAt = now
        }
        guard tokens >= min(cost, burst) else { return false }
        tokens -= cost
        return true
    }
}
