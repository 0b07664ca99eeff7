import DCGKACrypto

/// What `dcgka bench` runs.
public struct BenchConfiguration: Sendable {
    /// The paper's sizes (steps of about √2).
    public static let paperSizes = [8, 11, 16, 22, 32, 45, 64, 90, 128]

    public var sizes: [Int]
    public var operations: [BenchOperation]
    /// Runs per size and operation for sizes up to `largeSizeThreshold`.
    public var runs: Int
    /// Runs for larger sizes (256, 512, 1024 take seconds to minutes per run).
    public var largeRuns: Int
    public var largeSizeThreshold = 128
    /// Discarded runs before measuring (each selected operation, at a small size).
    public var warmupRuns: Int
    public var seed: UInt64

    public init(
        sizes: [Int] = paperSizes, operations: [BenchOperation] = BenchOperation.allCases, runs: Int = 25,
        largeRuns: Int? = nil, warmupRuns: Int = 2, seed: UInt64 = 1
    ) {
        self.sizes = sizes
        self.operations = operations
        self.runs = runs
        self.largeRuns = largeRuns ?? min(runs, 3)
        self.warmupRuns = warmupRuns
        self.seed = seed
    }

    public func runs(for size: Int) -> Int { size > largeSizeThreshold ? largeRuns : runs }
}

/// One row of the results: one group size and operation, aggregated over its runs.
public struct BenchRow: Sendable {
    public var groupSize: Int
    public var operation: BenchOperation
    public var sender: Summary
    public var senderTotal: Summary
    /// Over every (recipient, run) value.
    public var recipient: Summary
    public var addedMember: Summary?
    public var bytes: Summary
    public var envelopes: Summary
    public var memberStateBytes: Summary
    public var runs: Int

    init(groupSize: Int, operation: BenchOperation, samples: [BenchSample]) {
        self.groupSize = groupSize
        self.operation = operation
        sender = Summary(samples.map(\.senderCPU))
        senderTotal = Summary(samples.map(\.senderTotalCPU))
        recipient = Summary(samples.flatMap(\.recipientCPU))
        let added = samples.compactMap(\.addedMemberCPU)
        addedMember = added.isEmpty ? nil : Summary(added)
        bytes = Summary(samples.map { Double($0.bytes) })
        envelopes = Summary(samples.map { Double($0.envelopes) })
        memberStateBytes = Summary(samples.map { Double($0.memberStateBytes) })
        runs = samples.count
    }

    /// Measured mean CPU time (ms) of a role.
    public func measured(_ role: BenchRole) -> Double? {
        switch role {
        case .sender: return sender.mean
        case .senderTotal: return senderTotal.mean
        case .senderGeneration: return senderTotal.mean - sender.mean
        case .recipient: return recipient.mean
        case .addedMember: return addedMember?.mean
        }
    }
}

/// Everything one `dcgka bench` produced.
public struct BenchResults: Sendable {
    public var configuration: BenchConfiguration
    public var rows: [BenchRow]
    /// Primitive costs timed in the same process, before and after the runs (the lower of the two
    /// medians each, so a busy moment does not inflate the floor).
    public var costs: PrimitiveCosts
}

public enum BenchRunner {
    /// Runs the configured benchmark. `progress` receives one line per run.
    public static func run(
        _ configuration: BenchConfiguration, progress: (String) -> Void = { _ in }
    ) throws -> BenchResults {
        let selected = Set(configuration.operations)
        // The prototype's "create" is the set-up of every run (quirk 4): when other operations are
        // measured too, their set-ups are the create samples; alone, create gets its own runs.
        let scheduled = selected == [.create] ? [.create] : configuration.operations.filter { $0 != .create }
        var schedule: [(size: Int, operation: BenchOperation)] = []
        for size in configuration.sizes {
            for operation in scheduled {
                for _ in 0..<configuration.runs(for: size) { schedule.append((size, operation)) }
            }
        }
        var shuffler = SeededRandom(seed: configuration.seed ^ 0x5EED_0F_0D3E)
        schedule.shuffle(using: &shuffler)

        let warmupSize = min(8, configuration.sizes.min() ?? 8)
        for round in 0..<configuration.warmupRuns {
            for operation in scheduled {
                _ = try GroupBench.run(groupSize: warmupSize, operation: operation, seed: configuration.seed &+ 1_000_003 &* UInt64(round + 1))
            }
        }
        let before = PrimitiveCosts.measure(seed: configuration.seed)

        var samples: [Key: [BenchSample]] = [:]
        for (index, item) in schedule.enumerated() {
            let seed = configuration.seed &* 0x9E37_79B9 &+ UInt64(index)
            let (create, sample) = try GroupBench.run(groupSize: item.size, operation: item.operation, seed: seed)
            if selected.contains(.create) { samples[Key(size: item.size, operation: .create), default: []].append(create) }
            if let sample { samples[Key(size: item.size, operation: item.operation), default: []].append(sample) }
            let shown = sample ?? create
            progress(
                "[\(index + 1)/\(schedule.count)] n=\(item.size) \(item.operation.rawValue): sender \(format(shown.senderCPU)) ms"
                    + " (total \(format(shown.senderTotalCPU))), recipient mean \(format(Summary(shown.recipientCPU).mean)) ms,"
                    + " \(shown.bytes) bytes")
        }
        let after = PrimitiveCosts.measure(seed: configuration.seed &+ 1)
        let costs = PrimitiveCosts(
            signMs: min(before.signMs, after.signMs), verifyMs: min(before.verifyMs, after.verifyMs),
            keygenMs: min(before.keygenMs, after.keygenMs), sealMs: min(before.sealMs, after.sealMs),
            openMs: min(before.openMs, after.openMs))

        var rows: [BenchRow] = []
        for size in configuration.sizes {
            for operation in configuration.operations.sorted() {
                if let list = samples[Key(size: size, operation: operation)] {
                    rows.append(BenchRow(groupSize: size, operation: operation, samples: list))
                }
            }
        }
        return BenchResults(configuration: configuration, rows: rows, costs: costs)
    }

    struct Key: Hashable {
        var size: Int
        var operation: BenchOperation
    }

    static func format(_ value: Double) -> String { BenchReport.decimal(value, 3) }
}
