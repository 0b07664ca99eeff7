import Foundation
import Testing

/// `dcgka chat` as a person uses it: in a terminal (tmux), typing lines, while another process
/// imports what others sent into the same home.
@Suite struct ChatTmuxTests {
    static func tmuxPath() -> String? {
        ["/usr/bin/tmux", "/bin/tmux", "/usr/local/bin/tmux"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Runs a command and collects its output. `capture: false` for `tmux new-session`: the
    /// tmux server it starts would keep a captured pipe open, and reading it would never end.
    @discardableResult
    static func sh(_ executable: String, _ arguments: [String], capture: Bool = true) throws -> CLITests.Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if !capture {
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            process.standardInput = FileHandle.nullDevice
            try process.run()
            process.waitUntilExit()
            return CLITests.Result(status: process.terminationStatus, stdout: "", stderr: "")
        }
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        let errData = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return CLITests.Result(
            status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self), stderr: String(decoding: errData, as: UTF8.self))
    }

    static func contact(_ home: String) throws -> String {
        let result = try CLITests.run(["whoami", "--home", home, "--json"])
        let object = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
        return try #require(object?["contact"] as? String)
    }

    /// Polls until `condition` holds or `seconds` pass.
    static func eventually(_ seconds: Double, _ condition: () throws -> Bool) rethrows -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if try condition() { return true }
            Thread.sleep(forTimeInterval: 0.2)
        }
        return try condition()
    }

    // The real bounds are the waits below (at most 20 s each); Swift Testing's time limit also
    // counts the time a test waits for its turn, so it is generous.
    @Test("chat shows history, sends what is typed, and shows within seconds what an import in another process brings", .timeLimit(.minutes(10)))
    func chatInTmux() throws {
        guard let tmux = Self.tmuxPath() else {
            Issue.record("tmux is not installed (.ci/run installs it)")
            return
        }
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("dcgka-chat-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let socket = "dcgka-test-\(UUID().uuidString.prefix(8))"
        defer {
            _ = try? Self.sh(tmux, ["-L", socket, "kill-server"])
            try? FileManager.default.removeItem(atPath: root)
        }
        let alice = root + "/alice", bob = root + "/bob"
        for (home, name) in [(alice, "Alice"), (bob, "Bob")] {
            #expect(try CLITests.run(["init", "--home", home, "--name", name]).status == 0)
        }
        #expect(try CLITests.run(["contact", "add", "--home", alice, try Self.contact(bob), "--name", "Bob"]).status == 0)
        #expect(try CLITests.run(["contact", "add", "--home", bob, try Self.contact(alice), "--name", "Alice"]).status == 0)
        #expect(try CLITests.run(["group", "create", "--home", alice, "Newsroom", "--with", "Bob"]).status == 0)
        #expect(try CLITests.run(["send", "--home", alice, "Newsroom", "before the chat"]).status == 0)
        #expect(try CLITests.run(["export", "--home", alice, "--output", root + "/a1.dcgka"]).status == 0)
        #expect(try CLITests.run(["import", "--home", bob, root + "/a1.dcgka"]).status == 0)

        let binary = try CLITests.binary().path
        // Foundation's Process learns that a child ended when a descriptor it shares with the child
        // closes; the tmux server would inherit it and keep it open, so a shell closes every
        // descriptor above 2 before starting tmux (bash: dash cannot name descriptors past 9).
        let start = "for fd in /proc/$$/fd/*; do n=${fd##*/}; [ \"$n\" -gt 2 ] && eval \"exec $n>&-\" 2>/dev/null; done; "
            + "exec \(tmux) -L \(socket) new-session -d -s chat -x 160 -y 40 '\(binary) chat --home \(alice) Newsroom 2>\(root)/chat.err' 2>\(root)/tmux.err"
        let started = try Self.sh("/bin/bash", ["-c", start], capture: false)
        func diagnostics() -> String {
            let tmuxErr = (try? String(contentsOfFile: root + "/tmux.err", encoding: .utf8)) ?? ""
            let chatErr = (try? String(contentsOfFile: root + "/chat.err", encoding: .utf8)) ?? ""
            return "tmux exit \(started.status), tmux: \(tmuxErr), chat: \(chatErr)"
        }
        func screen() throws -> String { try Self.sh(tmux, ["-L", socket, "capture-pane", "-p", "-t", "chat"]).stdout }
        #expect(try Self.eventually(20) { try screen().contains("before the chat") }, "history not shown: \((try? screen()) ?? ""); \(diagnostics())")
        #expect(try Self.eventually(5) { try screen().contains("type a message") })

        // Typed in the chat: sent, and shown.
        try Self.sh(tmux, ["-L", socket, "send-keys", "-t", "chat", "typed in the chat", "Enter"])
        #expect(try Self.eventually(20) { try screen().contains("you: typed in the chat") }, "\((try? screen()) ?? "")")
        let log = try CLITests.run(["log", "--home", alice, "Newsroom", "--json"])
        #expect(log.stdout.contains("typed in the chat"))

        // Bob answers; the file is imported into Alice's home by another process while chat runs.
        #expect(try CLITests.run(["send", "--home", bob, "Newsroom", "answer from Bob"]).status == 0)
        #expect(try CLITests.run(["export", "--home", bob, "--output", root + "/b1.dcgka"]).status == 0)
        #expect(try CLITests.run(["import", "--home", alice, root + "/b1.dcgka"]).status == 0)
        #expect(try Self.eventually(10) { try screen().contains("Bob: answer from Bob") }, "\((try? screen()) ?? "")")

        try Self.sh(tmux, ["-L", socket, "send-keys", "-t", "chat", "/quit", "Enter"])
        #expect(try Self.eventually(10) { try Self.sh(tmux, ["-L", socket, "has-session", "-t", "chat"]).status != 0 }, "chat did not end")
    }
}
