import Benchmarking
import Foundation
import Testing

@Suite struct MeshBenchTests {
    /// `dcgka bench mesh` at tiny sizes: real devices on SQLite, real TCP links on loopback. Every
    /// probe crosses every hop, the pass's bytes are counted both ways and cover the differing
    /// envelopes, and forwarding costs something (the full run is in BENCHMARKS.md).
    @Test(.timeLimit(.minutes(10)))
    func meshBenchmarkAtTinySizes() async throws {
        var options = MeshBench.Options()
        options.repetitions = 2
        options.commonEnvelopes = 200
        options.differingPerSide = 5
        options.forwardEnvelopes = 50
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("dcgka-mesh-test-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let report = try await MeshBench.run(options: options, folder: folder)

        #expect(report.hops.map(\.hops) == [1, 2, 3])
        for hop in report.hops {
            #expect(hop.samples == 2, "every probe reached hop \(hop.hops)")
            #expect(hop.minMs > 0 && hop.maxMs < 30_000)
        }
        // Farther hops never see a message before nearer ones.
        #expect(report.hops[0].meanMs <= report.hops[1].meanMs && report.hops[1].meanMs <= report.hops[2].meanMs)

        let traffic = try #require(report.traffic)
        #expect(traffic.commonEnvelopes >= 200)
        #expect(traffic.differingEnvelopes >= 10)
        #expect(traffic.newAtConnector >= 5)
        #expect(traffic.differingEnvelopeBytes > 10 * 100)
        #expect(traffic.vectorBytes > 3 * 64)
        #expect(traffic.bytesToListener > 0 && traffic.bytesToConnector > 0)
        // Each direction carries at least its side's differing envelopes.
        #expect(traffic.totalBytes > traffic.differingEnvelopeBytes + traffic.handshakeBytes)
        #expect(traffic.handshakeBytes > 32 && traffic.transportRecords > 0)
        #expect(traffic.syncFrameBytes > traffic.differingEnvelopeBytes)
        #expect(traffic.idlePassBytes > 0 && traffic.idlePassBytes < traffic.totalBytes)
        #expect(traffic.ratio > 1)

        let forwarding = try #require(report.forwarding)
        #expect(forwarding.envelopes == 50)
        #expect(forwarding.directCPUSeconds > 0 && forwarding.chainCPUSeconds > 0)
        // The carrier, not in the group, held every envelope (the passes wait for it).
        #expect(forwarding.carrierCPUSeconds > 0 && forwarding.carriedBytes > 50 * 100)
    }
}
