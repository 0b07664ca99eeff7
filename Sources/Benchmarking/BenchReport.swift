/// CSV and text renderings of ``BenchResults``.
public enum BenchReport {
    /// The reference columns (`../shared/reference/*.csv`), in this order, first in every CSV.
    public static let referenceColumns = [
        "group_size", "operation", "sender_cpu_ms_mean", "recipient_cpu_ms_mean", "total_bytes_mean", "runs",
    ]

    /// Our extra columns, after the reference ones.
    public static let extraColumns = [
        "sender_total_cpu_ms_mean", "added_member_cpu_ms_mean",
        "sender_cpu_ms_sd", "recipient_cpu_ms_sd", "total_bytes_sd", "sender_total_cpu_ms_sd", "added_member_cpu_ms_sd",
        "envelopes_mean", "member_state_bytes_mean",
        "sender_total_floor_ms", "recipient_floor_ms", "added_member_floor_ms",
    ]

    public static var columns: [String] { referenceColumns + extraColumns }

    public static let floorColumns = [
        "group_size", "operation", "role", "sign", "verify", "keygen", "seal", "open", "floor_ms", "measured_ms", "ratio",
        "sign_ms", "verify_ms", "keygen_ms", "seal_ms", "open_ms",
    ]

    /// The results as CSV: a header line, then one line per row.
    public static func csv(_ results: BenchResults) -> String {
        var lines = [columns.joined(separator: ",")]
        for row in results.rows {
            func floor(_ role: BenchRole) -> String {
                CryptoFloor.counts(row.operation, role: role, groupSize: row.groupSize).map {
                    decimal($0.milliseconds(results.costs), 3)
                } ?? ""
            }
            let fields: [String] = [
                "\(row.groupSize)", row.operation.rawValue,
                decimal(row.sender.mean, 3), decimal(row.recipient.mean, 3), decimal(row.bytes.mean, 0), "\(row.runs)",
                decimal(row.senderTotal.mean, 3), row.addedMember.map { decimal($0.mean, 3) } ?? "",
                decimal(row.sender.sd, 3), decimal(row.recipient.sd, 3), decimal(row.bytes.sd, 1),
                decimal(row.senderTotal.sd, 3), row.addedMember.map { decimal($0.sd, 3) } ?? "",
                decimal(row.envelopes.mean, 1), decimal(row.memberStateBytes.mean, 0),
                floor(.senderTotal), floor(.recipient), row.operation == .add ? floor(.addedMember) : "",
            ]
            lines.append(fields.joined(separator: ","))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// One line per (size, operation, role) with the public-key operation counts, the floor they
    /// cost at the measured primitive costs, our measured mean and the ratio.
    public static func floorCSV(_ results: BenchResults) -> String {
        var lines = [floorColumns.joined(separator: ",")]
        let k = results.costs
        let unitCosts = [k.signMs, k.verifyMs, k.keygenMs, k.sealMs, k.openMs].map { decimal($0, 5) }
        for entry in floorEntries(results) {
            let c = entry.counts
            lines.append(([
                "\(entry.groupSize)", entry.operation.rawValue, entry.role.rawValue,
                decimal(c.sign, 2), decimal(c.verify, 2), decimal(c.keygen, 2), decimal(c.seal, 2), decimal(c.open, 2),
                decimal(entry.floorMs, 3), decimal(entry.measuredMs, 3), entry.ratio.map { decimal($0, 2) } ?? "",
            ] + unitCosts).joined(separator: ","))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    public struct FloorEntry: Sendable {
        public var groupSize: Int
        public var operation: BenchOperation
        public var role: BenchRole
        public var counts: CryptoCounts
        public var floorMs: Double
        public var measuredMs: Double
        public var ratio: Double? { floorMs > 0 ? measuredMs / floorMs : nil }
    }

    public static func floorEntries(_ results: BenchResults) -> [FloorEntry] {
        var entries: [FloorEntry] = []
        for row in results.rows {
            for role in BenchRole.allCases {
                guard let counts = CryptoFloor.counts(row.operation, role: role, groupSize: row.groupSize),
                      let measured = row.measured(role) else { continue }
                entries.append(FloorEntry(
                    groupSize: row.groupSize, operation: row.operation, role: role, counts: counts,
                    floorMs: counts.milliseconds(results.costs), measuredMs: measured))
            }
        }
        return entries
    }

    /// A human-readable table of the results.
    public static func table(_ results: BenchResults) -> String {
        var out = "DCGKA bench: thread CPU time per member (ms), bytes handed to the network per operation\n"
        let header = ["n", "operation", "sender", "sender total", "recipient", "added", "bytes", "runs"]
        var rows: [[String]] = [header]
        for row in results.rows {
            rows.append([
                "\(row.groupSize)", row.operation.rawValue,
                decimal(row.sender.mean, 3), decimal(row.senderTotal.mean, 3),
                decimal(row.recipient.mean, 3) + " ± " + decimal(row.recipient.sd, 3),
                row.addedMember.map { decimal($0.mean, 3) } ?? "-",
                decimal(row.bytes.mean, 0), "\(row.runs)",
            ])
        }
        out += align(rows)
        return out
    }

    /// The crypto floor table: primitive costs, then per (size, operation, role) floor and ratio.
    public static func floorTable(_ results: BenchResults) -> String {
        let c = results.costs
        var out = "Crypto floor: public-key operations the protocol needs, at these primitive costs (thread CPU, ms):\n"
        out += "  Ed25519 sign \(decimal(c.signMs, 4)), verify \(decimal(c.verifyMs, 4)); X25519 keygen \(decimal(c.keygenMs, 4));"
        out += " HPKE seal (DH, ephemeral apart) \(decimal(c.sealMs, 4)), open (DH) \(decimal(c.openMs, 4))\n"
        var rows: [[String]] = [["n", "operation", "role", "sign", "verify", "keygen", "seal", "open", "floor ms", "ours ms", "ratio"]]
        for e in floorEntries(results) {
            rows.append([
                "\(e.groupSize)", e.operation.rawValue, e.role.rawValue,
                decimal(e.counts.sign, 1), decimal(e.counts.verify, 1), decimal(e.counts.keygen, 1),
                decimal(e.counts.seal, 1), decimal(e.counts.open, 2),
                decimal(e.floorMs, 3), decimal(e.measuredMs, 3), e.ratio.map { decimal($0, 2) + "x" } ?? "-",
            ])
        }
        out += align(rows)
        return out
    }

    static func align(_ rows: [[String]]) -> String {
        guard let first = rows.first else { return "" }
        var widths = Array(repeating: 0, count: first.count)
        for row in rows { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
        var out = ""
        for row in rows {
            let cells = row.enumerated().map { i, cell in
                i < 3 ? cell.padding(to: widths[i]) : String(repeating: " ", count: widths[i] - cell.count) + cell
            }
            out += cells.joined(separator: "  ") + "\n"
        }
        return out
    }

    /// `value` with exactly `places` decimals (no Foundation); "nan" for NaN.
    public static func decimal(_ value: Double, _ places: Int) -> String {
        guard value.isFinite else { return value.isNaN ? "nan" : (value > 0 ? "inf" : "-inf") }
        var scale = 1.0
        for _ in 0..<places { scale *= 10 }
        let negative = value < 0
        let scaled = (abs(value) * scale).rounded()
        guard scaled < 9e18 else { return "\(value)" }
        let integer = UInt64(scaled)
        let factor = UInt64(scale)
        let whole = integer / factor
        var text = "\(whole)"
        if places > 0 {
            let fraction = "\(integer % factor)"
            text += "." + String(repeating: "0", count: places - fraction.count) + fraction
        }
        return negative && integer != 0 ? "-" + text : text
    }
}

extension String {
    func padding(to width: Int) -> String { count >= width ? self : self + String(repeating: " ", count: width - count) }
}
