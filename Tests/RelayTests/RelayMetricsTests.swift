import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Testing
import DCGKATestSupport

/// NETWORK.md §13.6: a relay started with `--metrics` serves Prometheus text at `/metrics`, and
/// the counters move with real traffic (connections, envelopes in, bytes out, commit latency,
/// refusals by reason).
@Suite(.serialized) struct RelayMetricsTests {
    static func fetch(_ url: URL) async throws -> String {
        let (data, response) = try await URLSession.shared.data(from: url)
        #expect((response as? HTTPURLResponse)?.statusCode == 200)
        return String(decoding: data, as: UTF8.self)
    }

    /// The value of the first sample of `name` (any labels), nil when absent.
    static func sample(_ text: String, _ name: String) -> Double? {
        for line in text.split(separator: "\n") where line.hasPrefix(name) && !line.hasPrefix("#") {
            let rest = line.dropFirst(name.count)
            guard rest.first == " " || rest.first == "{" else { continue }
            if let value = line.split(separator: " ").last.flatMap({ Double($0) }) { return value }
        }
        return nil
    }

    @Test("--metrics serves Prometheus text whose counters follow a real sync", .timeLimit(.minutes(4)))
    func prometheusEndpoint() async throws {
        let scratch = try Scratch("relay-metrics")
        defer { scratch.remove() }
        let metricsPort = try PostgresServer.freePort()
        let relay = try RelayProcess.start(
            data: scratch.path("relay"), options: RelayProcess.loopbackOptions + ["--metrics", "127.0.0.1:\(metricsPort)"])
        defer { relay.stop() }
        let url = try #require(URL(string: "http://127.0.0.1:\(metricsPort)/metrics"))
        // The endpoint may come up a moment after the relay prints its address.
        var before = ""
        for _ in 0..<50 {
            if let text = try? await Self.fetch(url) { before = text; break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(Self.sample(before, "dcgka_relay_envelopes_in_total") ?? 0 == 0)

        let alice = try Home.create("alice", in: scratch)
        let bob = try Home.create("bob", in: scratch)
        try Home.introduce(alice, bob)
        for home in [alice, bob] { _ = try home.must(["relay", "add", relay.address]) }
        _ = try alice.createGroup("Metrics", with: ["bob"])
        _ = try alice.must(["send", "Metrics", "counted"])
        _ = try alice.must(["sync"])
        _ = try bob.must(["sync"])

        let after = try await Self.fetch(url)
        #expect(after.contains("# TYPE dcgka_relay_envelopes_in_total counter"), "\(after)")
        let envelopes = try #require(Self.sample(after, "dcgka_relay_envelopes_in_total"))
        #expect(envelopes >= 3, "create, title and message at least: \(envelopes)")
        #expect((Self.sample(after, "dcgka_relay_bytes_out_total") ?? 0) > 0)
        #expect(after.contains("dcgka_relay_commit_seconds"), "commit latency is recorded")
        #expect(after.contains("dcgka_relay_connections"))
    }
}
