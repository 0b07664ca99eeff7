import Testing
@testable import Benchmarking

/// The bench's harness at tiny sizes: it must run every operation to completion with the protocol's
/// checks passing, and its reports must have the reference columns. Nothing here is timed.
@Suite struct BenchmarkingTests {
    @Test("every operation runs at n = 3 and 4 and counts what the prototype counts", arguments: [3, 4])
    func runsEveryOperation(n: Int) throws {
        for operation in BenchOperation.allCases {
            let (create, sample) = try GroupBench.run(groupSize: n, operation: operation, seed: 11)
            #expect(create.recipientCPU.count == n - 1)
            // The create envelope and one ack per other member.
            #expect(create.envelopes == n)
            #expect(create.bytes > 0)
            guard operation != .create else {
                #expect(sample == nil)
                continue
            }
            let s = try #require(sample)
            // Recipients: the n − 1 others (in a remove the removed member is one of them, in an
            // add the new member is not).
            #expect(s.recipientCPU.count == n - 1)
            #expect(s.senderTotalCPU >= s.senderCPU)
            #expect((s.addedMemberCPU != nil) == (operation == .add))
            switch operation {
            case .message:
                #expect(s.envelopes == 1)
                // 32 bytes of plaintext and the envelope's overhead.
                #expect(s.bytes > GroupBench.messagePlaintext.count)
            case .update, .remove:
                #expect(s.envelopes == n)  // the operation and n − 1 acks
            case .add:
                #expect(s.envelopes == n + 1)  // the add, n − 1 add-acks and the welcome-ack
            case .create:
                break
            }
        }
    }

    @Test("the runner aggregates one row per size and operation; create comes from every set-up")
    func runnerRows() throws {
        let configuration = BenchConfiguration(sizes: [3, 4], operations: [.create, .update, .message], runs: 2, warmupRuns: 0, seed: 5)
        let results = try BenchRunner.run(configuration)
        #expect(results.rows.map(\.groupSize) == [3, 3, 3, 4, 4, 4])
        #expect(results.rows.map(\.operation) == [.create, .update, .message, .create, .update, .message])
        // Quirk 4: create is the set-up of every run of that size (2 operations × 2 runs).
        #expect(results.rows.filter { $0.operation == .create }.allSatisfy { $0.runs == 4 })
        #expect(results.rows.filter { $0.operation != .create }.allSatisfy { $0.runs == 2 })
        #expect(results.costs.verifyMs > 0 && results.costs.signMs > 0 && results.costs.openMs > 0)
    }

    @Test("the CSV starts with exactly the reference columns and every line has every column")
    func csvShape() throws {
        let results = try BenchRunner.run(BenchConfiguration(sizes: [3], operations: [.add, .remove], runs: 1, warmupRuns: 0))
        let lines = BenchReport.csv(results).split(separator: "\n").map(String.init)
        let header = lines[0].split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        #expect(Array(header.prefix(6)) == BenchReport.referenceColumns)
        #expect(BenchReport.referenceColumns == [
            "group_size", "operation", "sender_cpu_ms_mean", "recipient_cpu_ms_mean", "total_bytes_mean", "runs",
        ])
        #expect(header.contains("sender_total_cpu_ms_mean") && header.contains("added_member_cpu_ms_mean"))
        #expect(lines.count == 3)
        for line in lines.dropFirst() {
            let fields = line.split(separator: ",", omittingEmptySubsequences: false)
            #expect(fields.count == header.count)
            #expect(Int(fields[0]) == 3)
            #expect(Double(fields[2]) != nil && Double(fields[3]) != nil && Double(fields[4]) != nil)
        }
        let floor = BenchReport.floorCSV(results).split(separator: "\n")
        #expect(floor[0] == Substring(BenchReport.floorColumns.joined(separator: ",")))
    }

    @Test("crypto-floor counts follow the formulas")
    func floorCounts() {
        let n = 128
        let update = CryptoFloor.counts(.update, role: .senderTotal, groupSize: n)!
        #expect(update == CryptoCounts(sign: 1, verify: 127, keygen: 3 * 127, seal: 127, open: 0))
        #expect(CryptoFloor.counts(.update, role: .recipient, groupSize: n)! == CryptoCounts(sign: 1, verify: 127, open: 1))
        #expect(CryptoFloor.counts(.add, role: .addedMember, groupSize: n)! == CryptoCounts(sign: 1, verify: 128, open: 128))
        #expect(CryptoFloor.counts(.add, role: .sender, groupSize: n)! == CryptoCounts(verify: 128))
        #expect(CryptoFloor.counts(.update, role: .addedMember, groupSize: n) == nil)
        let costs = PrimitiveCosts(signMs: 1, verifyMs: 10, keygenMs: 100, sealMs: 1000, openMs: 10000)
        #expect(CryptoCounts(sign: 1, verify: 2, keygen: 3, seal: 4, open: 5).milliseconds(costs) == 54321)
    }

    @Test("decimal formatting")
    func decimals() {
        #expect(BenchReport.decimal(1.23456, 3) == "1.235")
        #expect(BenchReport.decimal(0.0004, 3) == "0.000")
        #expect(BenchReport.decimal(2562, 0) == "2562")
        #expect(BenchReport.decimal(-0.5, 1) == "-0.5")
        #expect(BenchReport.decimal(0.05, 3) == "0.050")
        #expect(BenchReport.decimal(.nan, 2) == "nan")
    }
}
