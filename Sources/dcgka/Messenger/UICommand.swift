import ArgumentParser
import Device
import Foundation
import Logging
import Sync
import WebUI

/// `dcgka ui`: the local web client (issue 12).
struct UICommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ui",
        abstract: "Open the messenger in your browser: a local web client served on loopback only.",
        discussion: """
            The first line on standard output is the address to open, http://127.0.0.1:PORT/#token=…; the token is made \
            at every start and only that address can use the page's API. While it runs, the device keeps its links up: \
            every relay of the home, the direct links given here or added in the page, LAN discovery when asked. Stop it \
            with Ctrl-C.
            """)

    @OptionGroup var home: HomeOptions
    @Option(help: "Where to serve the page: 127.0.0.1:PORT, [::1]:PORT or localhost:PORT (port 0 picks a free one).")
    var listen = "127.0.0.1:7450"
    @Flag(help: "Open the address in the default browser (xdg-open).") var open = false
    @Option(name: .customLong("peer-listen"), help: "Also accept direct links from contacts on HOST:PORT (as `dcgka peer listen`).")
    var peerListen: String?
    @Option(name: .long, parsing: .upToNextOption, help: "Keep direct links to these devices, HOST:PORT each.") var connect: [String] = []
    @Flag(help: "Announce this device on the local network and link to contacts found there (needs --peer-listen).") var lan = false
    @Option(help: "Log level: trace, debug, info, notice, warning, error.") var logLevel = "warning"

    func run() async throws {
        do {
            let (host, port) = try RelayAddress.split(listen, allowingPortZero: true)
            var configuration = UIServer.Configuration()
            configuration.host = host
            configuration.port = Int(port)
            configuration.peerListen = try peerListen.map { text in
                let (host, port) = try RelayAddress.split(text, allowingPortZero: true)
                return (host, Int(port))
            }
            configuration.peers = connect
            configuration.lan = lan
            guard !lan || peerListen != nil else { throw CLIError("--lan needs --peer-listen HOST:PORT (where contacts found on the LAN link to)") }
            var logger = Logger(label: "dcgka.ui")
            logger.logLevel = Logger.Level(rawValue: logLevel) ?? .warning
            let device = try home.open(create: true)
            let server = UIServer(device: device, configuration: configuration, logger: logger)
            let open = open
            try await server.run { url in
                FileHandle.standardOutput.write(Data("\(url)\n".utf8))
                if open { Self.openBrowser(url) }
            }
        } catch let error as any CustomStringConvertible {
            FileHandle.standardError.write(Data("dcgka: \(error.description)\n".utf8))
            throw ExitCode(1)
        }
    }

    static func openBrowser(_ url: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["xdg-open", url]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        do { try process.run() } catch {
            FileHandle.standardError.write(Data("dcgka: could not open a browser (\(error)); open the address above yourself\n".utf8))
        }
    }
}
