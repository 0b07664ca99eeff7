import DCGKACrypto
import Dispatch

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
    /// Runs executed at the same time, each on its own thread (thread CPU time stays per member;
    /// 1 keeps the machine's other core free, as for the published tables).
    public var jobs: Int

    public init(
        sizes: [Int] = paperSizes, operations: [BenchOperation] = BenchOperation.allCases, runs: Int = 25,
        largeRuns: Int? = nil, warmupRuns: Int = 2, seed: UInt64 = 1, jobs: Int = 1
    ) {
        self.jobs = max(1, jobs)
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

        func describe(_ index: Int, _ item: (size: Int, operation: BenchOperation), _ shown: BenchSample) -> String {
            "[\(index + 1)/\(schedule.count)] n=\(item.size) \(item.operation.rawValue): sender \(format(shown.senderCPU)) ms"
                + " (total \(format(shown.senderTotalCPU))), recipient mean \(format(Summary(shown.recipientCPU).mean)) ms,"
                + " \(shown.bytes) bytes"
        }
        func seed(_ index: Int) -> UInt64 { configuration.seed &* 0x9E37_79B9 &+ UInt64(index) }

        var outcomes: [(create: BenchSample, operation: BenchSample?)] = []
        if configuration.jobs == 1 {
            for (index, item) in schedule.enumerated() {
                let outcome = try GroupBench.run(groupSize: item.size, operation: item.operation, seed: seed(index))
                outcomes.append(outcome)
                progress(describe(index, item, outcome.operation ?? outcome.create))
            }
        } else {
            // Each run stays on one worker thread from start to end; workers take every jobs-th run.
            let slots = Slots(count: schedule.count)
            let jobs = configuration.jobs
            let frozen = schedule
            let seeds = (0..<schedule.count).map(seed)
            DispatchQueue.concurrentPerform(iterations: jobs) { worker in
                for index in stride(from: worker, to: frozen.count, by: jobs) {
                    let item = frozen[index]
                    slots.set(index, Result { try GroupBench.run(groupSize: item.size, operation: item.operation, seed: seeds[index]) })
                }
            }
            for index in schedule.indices {
                let outcome = try slots.get(index).get()
                outcomes.append(outcome)
                progress(describe(index, schedule[index], outcome.operation ?? outcome.create))
            }
        }

        var samples: [Key: [BenchSample]] = [:]
        for (item, outcome) in zip(schedule, outcomes) {
            if selected.contains(.create) { samples[Key(size: item.size, operation: .create), default: []].append(outcome.create) }
            if let sample = outcome.operation { samples[Key(size: item.size, operation: item.operation), default: []].append(sample) }
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

/// One result slot per run, written by exactly one worker each (disjoint indices), read after all
/// workers have finished.
final class Slots: @unchecked Sendable {
    typealias Outcome = Result<(create: BenchSample, operation: BenchSample?), any Error>
    private var values: [Outcome?]
    private let lock = DispatchSemaphore(value: 1)

    init(count: Int) { values = Array(repeating: nil, count: count) }

    func set(_ index: Int, _ value: Outcome) {
        lock.wait()
        values[index] = value
        lock.signal()
    }

    func get(_ index: Int) -> Outcome {
        lock.wait()
        defer { lock.signal() }
        return values[index]!
    }
}
