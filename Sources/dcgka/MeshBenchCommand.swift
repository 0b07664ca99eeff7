import ArgumentParser
import Benchmarking
import Foundation

/// `dcgka bench mesh`: issue 11's benchmarks of direct links and the mesh (BENCHMARKS.md).
struct MeshBenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mesh",
        abstract: "Send-to-read time across 1, 2 and 3 mesh hops, sync traffic when two large holders meet, CPU cost of forwarding.",
        discussion: """
            Real device engines (SQLite files in a temporary folder, deleted at the end) and real direct links \
            (TCP on 127.0.0.1), all in this process. A chain D0—D1—D2—D3 of followed links carries messages from D0; \
            two devices holding a large group with a few differences each make one sync pass through a byte-counting \
            proxy; a middle device receives and passes on envelopes. A size of 0 skips its part. Build in release mode.
            """)

    @Option(help: "Messages sent through the chain (each timed at 1, 2 and 3 hops).") var repetitions = 50
    @Option(help: "Envelopes both devices hold before they meet.") var envelopes = 10_000
    @Option(help: "Envelopes each of the two has that the other lacks.") var differing = 5
    @Option(help: "Envelopes a middle device receives and passes on.") var forward = 2_000
    @Option(help: "Trials of the forwarding run (the median is reported).") var trials = 3
    @Option(help: "How often the receivers' histories are read while a message travels (ms).") var poll = 5
    @Option(help: "Make the chain's links anew, at random phases, before every this many messages (0: keep the first links).")
    var relinkEvery = 1
    @Flag(help: "Print one JSON object.") var json = false

    func validate() throws {
        guard repetitions >= 0, envelopes >= 0, forward >= 0 else { throw ValidationError("sizes must not be negative") }
        guard envelopes == 0 || envelopes >= 2 else { throw ValidationError("--envelopes must be 0 or at least 2") }
        guard differing >= 1 else { throw ValidationError("--differing must be at least 1") }
        guard trials >= 1 else { throw ValidationError("--trials must be at least 1") }
        guard relinkEvery >= 0 else { throw ValidationError("--relink-every must not be negative") }
        guard poll >= 1 else { throw ValidationError("--poll must be at least 1 ms") }
    }

    func run() async throws {
        var options = MeshBench.Options()
        options.repetitions = repetitions
        options.commonEnvelopes = envelopes
        options.differingPerSide = differing
        options.forwardEnvelopes = forward
        options.forwardTrials = trials
        options.pollMilliseconds = poll
        options.relinkEvery = relinkEvery
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("dcgka-bench-mesh-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let report = try await MeshBench.run(
            options: options, folder: folder, progress: { FileHandle.standardError.write(Data("\($0)\n".utf8)) })
        if json {
            try Output.encodable(report)
            return
        }
        if !report.hops.isEmpty {
            let relinked = report.relinkEvery == 0 ? "one set of links" : "links made anew every \(report.relinkEvery) message(s)"
            print("send to read, D0 → Dk over followed direct links (\(report.repetitions) messages, \(relinked); links push every \(report.pushIntervalMs) ms, histories polled every \(report.pollIntervalMs) ms):")
            for hop in report.hops {
                print(String(format: "  %d hop%@: median %.1f ms, p90 %.1f ms, p99 %.1f ms (min %.1f, max %.1f, mean %.1f)",
                             hop.hops, hop.hops == 1 ? "" : "s", hop.medianMs, hop.p90Ms, hop.p99Ms, hop.minMs, hop.maxMs, hop.meanMs))
            }
        }
        if let traffic = report.traffic {
            print("sync traffic: two devices holding \(traffic.commonEnvelopes) envelopes in common (a vector of \(traffic.vectorSenders) senders), \(traffic.differingEnvelopes) differing, one pass:")
            print("  on the wire: \(traffic.totalBytes) bytes (\(traffic.bytesToListener) to the listener, \(traffic.bytesToConnector) back)")
            print("  of which: handshake \(traffic.handshakeBytes), \(traffic.transportRecords) records × 18 bytes of framing and tag, sync frames \(traffic.syncFrameBytes)")
            print("  differing envelopes \(traffic.differingEnvelopeBytes) bytes + one vector \(traffic.vectorBytes) bytes = \(traffic.differingEnvelopeBytes + traffic.vectorBytes)")
            print(String(format: "  ratio %.2f (target: at most 2)%@; a second pass with nothing differing: %d bytes",
                         traffic.ratio, traffic.ratio <= 2 ? "" : " — missed", traffic.idlePassBytes))
            print(String(format: "  the pass took %.1f ms; one read of the group's holdings (every hash) %.1f ms",
                         traffic.passSeconds * 1000, traffic.holdingsReadSeconds * 1000))
            print("  frames each side sends in any pass: hello \(traffic.helloFrameBytes), have \(traffic.vectorBytes); "
                  + "only to a relay: its bundle \(traffic.bundlesFrameBytes), the request for its contacts' bundles "
                  + "\(traffic.bundleRequestFrameBytes); a relay's ack of one side's differing envelopes would be \(traffic.ackFrameBytes)")
        }
        if let forwarding = report.forwarding {
            print("forwarding \(forwarding.envelopes) envelopes (process CPU time, medians of \(forwarding.trials) trials):")
            print(String(format: "  direct A→B: %.3f s CPU (%.0f µs per envelope, both ends), %.3f s wall",
                         forwarding.directCPUSeconds, forwarding.directMicrosecondsPerEnvelope, forwarding.directWallSeconds))
            print(String(format: "  through M (A→M, C→M): %.3f s CPU, %.3f s wall", forwarding.chainCPUSeconds, forwarding.chainWallSeconds))
            print(String(format: "  a middle device adds %.0f µs per envelope (trials: %@)", forwarding.forwardingMicrosecondsPerEnvelope,
                         forwarding.forwardingMicrosecondsPerTrial.map { String(format: "%.0f", $0) }.joined(separator: ", ")))
            print(String(format: "  through a carrier K, not in the group (A→K, C→K): %.3f s CPU, %.3f s wall; carrying adds %.0f µs per envelope (trials: %@); K holds %d bytes",
                         forwarding.carrierCPUSeconds, forwarding.carrierWallSeconds, forwarding.carrierMicrosecondsPerEnvelope,
                         forwarding.carrierMicrosecondsPerTrial.map { String(format: "%.0f", $0) }.joined(separator: ", "), forwarding.carriedBytes))
        }
    }
}
