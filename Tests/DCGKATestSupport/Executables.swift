import Foundation

/// Finds the package's built executables for tests that run them as subprocesses.
public enum TestExecutables {
    /// The `dcgka` binary of this test run: next to the test bundle (Linux: the `.xctest`
    /// executable; macOS: the parent of the `.xctest` bundle), or under the package's build
    /// directories.
    public static func dcgka() throws -> URL {
        let fileManager = FileManager.default
        var candidates: [URL] = []
        for path in [CommandLine.arguments.first, Bundle.main.executablePath].compactMap({ $0 }) {
            var url = URL(fileURLWithPath: path).deletingLastPathComponent()
            for _ in 0..<4 {
                candidates.append(url.appendingPathComponent("dcgka"))
                url = url.deletingLastPathComponent()
            }
        }
        for bundle in Bundle.allBundles where bundle.bundlePath.hasSuffix(".xctest") {
            candidates.append(bundle.bundleURL.deletingLastPathComponent().appendingPathComponent("dcgka"))
        }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        if let entries = try? fileManager.contentsOfDirectory(atPath: root.path) {
            for entry in entries.sorted() where entry.hasPrefix(".build") {
                candidates.append(root.appendingPathComponent(entry).appendingPathComponent("debug/dcgka"))
                candidates.append(root.appendingPathComponent(entry).appendingPathComponent("release/dcgka"))
            }
        }
        for candidate in candidates {
            var isDirectory: ObjCBool = false
            if fileManager.fileExists(atPath: candidate.path, isDirectory: &isDirectory), !isDirectory.boolValue,
               fileManager.isExecutableFile(atPath: candidate.path) {
                return candidate
            }
        }
        throw NotFound(searched: candidates.map(\.path))
    }

    public struct NotFound: Error, CustomStringConvertible {
        public let searched: [String]
        public var description: String { "dcgka not found; searched \(searched)" }
    }
}
