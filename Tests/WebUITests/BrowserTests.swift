import DCGKATestSupport
import Foundation
import Testing

/// The web client in a real browser (issue 12): `Tests/Browser/ui_test.py` starts a relay and
/// two `dcgka ui` processes on loopback and drives two headless Chromium sessions through
/// Selenium: Alice creates a group, invites Bob by his contact code, Bob accepts, they chat
/// both ways, markup shows as text and runs nothing, Alice removes Bob, Bob reads nothing
/// after; and requests without the token, from a foreign Origin or to a foreign Host are
/// refused. `.ci/run` installs Chromium, chromedriver and Selenium.
@Suite("The web client in a browser", .serialized)
struct BrowserTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// What the browser test needs, or a sentence on how to get it.
    static func missing() -> String? {
        for program in ["/usr/bin/chromium", "/usr/bin/chromedriver"] where !FileManager.default.isExecutableFile(atPath: program) {
            return "\(program) is missing: apt-get install chromium chromium-driver (Debian)"
        }
        let probe = try? CLI.run(["python3", "-c", "import selenium"], executable: URL(fileURLWithPath: "/usr/bin/env"), timeout: 60)
        guard probe?.succeeded == true else { return "Selenium is missing: pip install selenium" }
        return nil
    }

    @Test("Two people, two homes, two `dcgka ui` and a relay: the whole flow in headless Chromium", .timeLimit(.minutes(10)))
    func browserFlow() throws {
        if let missing = Self.missing() {
            Issue.record("the browser test cannot run: \(missing)")
            return
        }
        let script = Self.root.appendingPathComponent("Tests/Browser/ui_test.py").path
        var arguments = [script, "--dcgka", try CLI.binary().path]
        if let folder = ProcessInfo.processInfo.environment["DCGKA_UI_SCREENSHOTS"], !folder.isEmpty {
            arguments += ["--screenshots", folder]
        }
        let result = try CLI.run(
            ["python3"] + arguments, executable: URL(fileURLWithPath: "/usr/bin/env"),
            environment: ["DCGKA_UI_SITE": Self.root.appendingPathComponent("Sources/WebUI/Resources/site").path], timeout: 480)
        #expect(result.succeeded, "ui_test.py failed:\n\(result.stdout)\n\(result.stderr)")
        // Each step of the issue's flow reported itself.
        for step in ["created the group", "accepted", "markup", "removed", "refused"] {
            #expect(result.stdout.contains(step), "no step mentioning \"\(step)\" in:\n\(result.stdout)")
        }
    }
}
