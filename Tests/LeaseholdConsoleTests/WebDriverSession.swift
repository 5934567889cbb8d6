import AsyncHTTPClient
import Foundation
import LeaseholdLocalStack
import LeaseholdTesting
import NIOCore
import NIOHTTP1

/// A headless Chromium driven over the W3C WebDriver HTTP protocol: `chromedriver` started on a
/// free loopback port, one session, the few commands the console's browser test needs.
final class WebDriverSession: Sendable {
    let driver: ChildProcess
    let base: String
    let id: String
    let http: HTTPClient

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// Starts chromedriver and a headless Chromium session (`--no-sandbox`: CI runs as root).
    static func start(in directory: URL, width: Int = 1280, height: Int = 1000) async throws -> WebDriverSession {
        guard
            let chromedriver = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"].first(where: {
                FileManager.default.isExecutableFile(atPath: $0)
            })
        else {
            throw TestSetupError("chromedriver is missing: run .ci/setup (Debian packages chromium, chromium-driver)")
        }
        let port = try freeLoopbackPort()
        let driver = try ChildProcess(
            name: "chromedriver", executable: URL(fileURLWithPath: chromedriver), arguments: ["--port=\(port)"],
            log: directory.appendingPathComponent("chromedriver.log"))
        let http = HTTPClient(eventLoopGroupProvider: .singleton)
        let base = "http://127.0.0.1:\(port)"
        do {
            let deadline = ContinuousClock.now + .seconds(20)
            while (try? await Self.call(http, .GET, "\(base)/status"))?["value"] == nil {
                guard ContinuousClock.now < deadline else { throw TestSetupError("chromedriver did not start") }
                try await Task.sleep(for: .milliseconds(100))
            }
            let capabilities: [String: Any] = [
                "capabilities": [
                    "alwaysMatch": [
                        "browserName": "chrome",
                        "goog:chromeOptions": [
                            "args": [
                                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                                "--window-size=\(width),\(height)",
                            ]
                        ],
                    ]
                ]
            ]
            let created = try await Self.call(http, .POST, "\(base)/session", capabilities)
            guard let value = created["value"] as? [String: Any], let id = value["sessionId"] as? String else {
                throw TestSetupError("chromedriver did not create a session: \(created)")
            }
            return WebDriverSession(driver: driver, base: base, id: id, http: http)
        } catch {
            await driver.stop(signal: SIGTERM, timeout: .seconds(5))
            try? await http.shutdown()
            throw error
        }
    }

    private init(driver: ChildProcess, base: String, id: String, http: HTTPClient) {
        self.driver = driver
        self.base = base
        self.id = id
        self.http = http
    }

    func quit() async {
        _ = try? await Self.call(http, .DELETE, "\(base)/session/\(id)")
        await driver.stop(signal: SIGTERM, timeout: .seconds(5))
        try? await http.shutdown()
    }

    @discardableResult
    private static func call(_ http: HTTPClient, _ method: HTTPMethod, _ url: String, _ body: [String: Any]? = nil)
        async throws -> [String: Any]
    {
        var request = HTTPClientRequest(url: url)
        request.method = method
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: body)))
        }
        let response = try await http.execute(request, timeout: .seconds(30))
        let bytes = try await response.body.collect(upTo: 1 << 26)
        let json = (try JSONSerialization.jsonObject(with: Data(buffer: bytes))) as? [String: Any] ?? [:]
        if response.status.code >= 400 {
            throw Failure(description: "WebDriver \(method) \(url): \(response.status.code) \(json["value"] ?? "")")
        }
        return json
    }

    @discardableResult
    private func command(_ method: HTTPMethod, _ path: String, _ body: [String: Any]? = nil) async throws -> Any? {
        try await Self.call(http, method, "\(base)/session/\(id)\(path)", body)["value"]
    }

    func open(_ url: String) async throws { try await command(.POST, "/url", ["url": url]) }

    var currentURL: String {
        get async throws { try await command(.GET, "/url") as? String ?? "" }
    }

    var title: String {
        get async throws { try await command(.GET, "/title") as? String ?? "" }
    }

    /// The text the page shows (`document.body`'s rendered text).
    var text: String {
        get async throws { try await self.element("body").text }
    }

    /// The first element matching a CSS selector.
    func element(_ selector: String) async throws -> Element {
        let value = try await command(.POST, "/element", ["using": "css selector", "value": selector])
        guard let object = value as? [String: Any], let reference = object.values.first as? String else {
            throw Failure(description: "no element \(selector)")
        }
        return Element(session: self, id: reference)
    }

    /// Clicks the element matching `selector` and waits until the browser has left the current
    /// page (every click the test makes submits a form or follows a link) and loaded the next.
    func clickAndWait(_ selector: String, timeout: Duration = .seconds(10)) async throws {
        let before = try await currentURL
        try await element(selector).click()
        let deadline = ContinuousClock.now + timeout
        while true {
            let state = try? await command(
                .POST, "/execute/sync", ["script": "return document.readyState", "args": [Any]()])
            if let url = try? await currentURL, url != before, state as? String == "complete" { return }
            guard ContinuousClock.now < deadline else { throw Failure(description: "no navigation after \(selector)") }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// Runs a script in the page (test set-up only: the console itself needs no JavaScript).
    func execute(_ script: String) async throws {
        try await command(.POST, "/execute/sync", ["script": script, "args": [Any]()])
    }

    /// Saves a PNG screenshot of the window to `file`.
    func screenshot(to file: URL) async throws {
        guard let base64 = try await command(.GET, "/screenshot") as? String, let png = Data(base64Encoded: base64)
        else { throw Failure(description: "no screenshot") }
        try FileManager.default.createDirectory(
            at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        try png.write(to: file)
    }

    /// One element of the page.
    struct Element: Sendable {
        let session: WebDriverSession
        let id: String

        func click() async throws { try await session.command(.POST, "/element/\(id)/click", [:]) }

        func type(_ text: String) async throws {
            try await session.command(.POST, "/element/\(id)/clear", [:])
            try await session.command(.POST, "/element/\(id)/value", ["text": text])
        }

        var text: String {
            get async throws { try await session.command(.GET, "/element/\(id)/text") as? String ?? "" }
        }
    }
}
