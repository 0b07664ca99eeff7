import DCGKATestSupport
import Foundation

/// The known-answer vector file `Vectors/dcgka-vectors.json` (docs/VECTORS.md).
///
/// The file is the reference, the code is checked against it: a check reads the inputs from the
/// file, recomputes every output with the real code and reports each field that differs. It is
/// found next to this source file (`#filePath`), not as a SwiftPM resource, so that regenerating
/// writes the file that is committed.
struct VectorFile: Codable {
    var version: Int
    var description: String
    var memberSecret: VectorGroup<MemberSecretVector>
    var updateRatchet: VectorGroup<UpdateRatchetVector>
    var messageRatchet: VectorGroup<MessageRatchetVector>
    var seedConfirmation: VectorGroup<SeedConfirmationVector>
    var epochConfirmation: VectorGroup<EpochConfirmationVector>
    var scriptedGroup: ScriptedGroupVectors

    static let currentVersion = 1
    static let summary =
        "Known-answer vectors of swift-dcgka for PROTOCOL.md §5.2, §5.7, §7 and one scripted group. "
        + "Every byte string is lowercase hex; HKDF is HKDF-SHA256 (RFC 5869). See docs/VECTORS.md."

    static let url = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()
        .appendingPathComponent("Vectors/dcgka-vectors.json")

    /// The decoded file and its raw JSON tree (compared key by key, so that a stray or missing
    /// field in the file is reported too).
    static func load() throws -> (VectorFile, [String: Any]) {
        let data = try Data(contentsOf: url)
        let file = try JSONDecoder().decode(VectorFile.self, from: data)
        guard let raw = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw CocoaError(.coderReadCorrupt)
        }
        return (file, raw)
    }

    /// Sorted keys and a trailing newline: regenerating unchanged vectors gives the same bytes.
    func write() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try FileManager.default.createDirectory(at: Self.url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try (encoder.encode(self) + Data("\n".utf8)).write(to: Self.url, options: .atomic)
    }
}

/// One group of vectors with the description of what they are (spec section and formula).
struct VectorGroup<V: Codable>: Codable {
    var description: String
    var vectors: [V]
}

// MARK: - Helpers

/// The bytes `first, first + 1, …` (the fixed inputs of the derivation vectors).
func run(from first: UInt8, count: Int = 32) -> [UInt8] { (0..<count).map { first &+ UInt8($0) } }

/// Lowercase hex to bytes; nil for anything else, so that a malformed file is reported, never trapped on.
func bytes(_ string: String, count: Int? = nil) -> [UInt8]? {
    let digits = string.utf8
    guard digits.count % 2 == 0, count.map({ $0 * 2 == digits.count }) ?? true,
          digits.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }) else { return nil }
    return hex(string)
}

/// A value as the JSON tree it encodes to (what the file holds).
func jsonTree(_ value: some Encodable) -> Any {
    try! JSONSerialization.jsonObject(with: JSONEncoder().encode(value))
}

/// Every leaf where the file's tree and the code's tree differ, named by its path.
func differences(_ path: String, file: Any?, code: Any?) -> [String] {
    switch (file, code) {
    case let (file as [String: Any], code as [String: Any]):
        return Set(file.keys).union(code.keys).sorted().flatMap {
            differences("\(path).\($0)", file: file[$0], code: code[$0])
        }
    case let (file as [Any], code as [Any]):
        var out = zip(file, code).enumerated().flatMap { differences("\(path)[\($0)]", file: $1.0, code: $1.1) }
        if file.count != code.count { out.append("\(path): \(file.count) entries in the file, \(code.count) from the code") }
        return out
    case (nil, nil):
        return []
    case (nil, let code?):
        return ["\(path): missing from the file, the code gives \(code)"]
    case (let file?, nil):
        return ["\(path): the file has \(file), the code gives nothing"]
    case (let file?, let code?):
        let (f, c) = (String(describing: file), String(describing: code))
        return f == c ? [] : ["\(path): the file has \(f), the code gives \(c)"]
    }
}
