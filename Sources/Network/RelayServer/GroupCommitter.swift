internal import DCGKAEncoding
public import Relay

/// Group commit (NETWORK.md §13.4): batches that links submit while a commit is running wait
/// for the next one, and all of them are stored in one transaction, so throughput does not pay
/// one fsync per envelope or per link.
actor GroupCommitter {
    let store: any RelayStore
    let quotas: StoreQuotas
    let clock: @Sendable () -> UInt64
    private var pending: [(StoreBatch, CheckedContinuation<[StoreOutcome], any Error>)] = []
    private var flushing = false

    init(store: any RelayStore, quotas: StoreQuotas, clock: @escaping @Sendable () -> UInt64) {
        self.store = store
        self.quotas = quotas
        self.clock = clock
    }

    func commit(_ batch: StoreBatch) async throws -> [StoreOutcome] {
        try await withCheckedThrowingContinuation { continuation in
            pending.append((batch, continuation))
            if !flushing {
                flushing = true
                Task { await self.flush() }
            }
        }
    }

    private func flush() async {
        while !pending.isEmpty {
            let taken = pending
            pending = []
            do {
                let outcomes = try await store.store(taken.map(\.0), now: clock(), quotas: quotas)
                for ((_, continuation), outcome) in zip(taken, outcomes) { continuation.resume(returning: outcome) }
            } catch {
                for (_, continuation) in taken { continuation.resume(throwing: error) }
            }
        }
        flushing = false
    }
}
