import AsyncHTTPClient
import Foundation
import LeaseholdConsole
import LeaseholdLocalStack
import LeaseholdPostgres
import LeaseholdQueue
import LeaseholdTesting
import NIOCore
import Testing

/// The console in a real browser: headless Chromium over WebDriver against a `leasehold console`
/// process, with a worker and a supervisor running. Log in, see the overview, filter the dead
/// letters, open one, replay it, see it processed and gone from the list; refused without a login
/// and with a bad CSRF token. Every page is saved as a PNG under `.build/console-screenshots/`.
@Suite("Console: in a browser", .enabled(if: IntegrationEnvironment.isAvailable))
struct ConsoleBrowserTests {
    static let token = "browser-test-token"
    static let screenshots = LeaseholdExecutable.packageRoot.appendingPathComponent(".build/console-screenshots")

    @Test(.timeLimit(.minutes(2)))
    func anOperatorFindsADeadLetterReplaysItAndSeesItProcessed() async throws {
        let stack = try await ProcessStack.start(
            ingress: 1, workers: 1, supervisors: 1, supervisorEnvironment: ["LEASEHOLD_SAMPLE_INTERVAL_MS": "300"])
        let slots = try await stack.seed(slots: 12, users: 12)
        // Some traffic, so the chart has something to show.
        for index in 0..<8 {
            _ = try await stack.book(requestID: "warm-\(index)", userID: Int64(index + 1), slotID: slots[index])
        }
        for index in 0..<8 { _ = try await stack.outcome(of: "warm-\(index)") }

        let replayable = try await Self.deadLetter(
            stack, key: "api:console-replay",
            payload: #"{"action":"book","user_id":10,"slot_id":\#(slots[10]),"request_id":"console-replay"}"#,
            error: "lock timeout on slot \(slots[10])")
        let hostile = try await Self.deadLetter(
            stack, key: "api:console-hostile", payload: #"{"note":"<script>alert(1)</script>"}"#,
            error: "undecodable payload <script>alert(1)</script>")
        try await Self.deadLetter(
            stack, key: "api:console-other", payload: #"{"action":"book","user_id":11}"#, error: "slot_id missing")

        // An hour of earlier samples, as a leader running all along would have recorded them, so the
        // chart (and the README's screenshot) shows a shape; the supervisor's own samples follow.
        let now = Date().timeIntervalSince1970
        for step in 0..<110 {
            let wave = sin(Double(step) / 9)
            let sample = ThroughputSampler.Sample(
                at: Int64((now - 3300 + Double(step) * 30) * 1000), backlog: Int64(40 + 35 * wave + Double(step % 7)),
                processed: Int64(600 + 180 * cos(Double(step) / 11)), intervalSeconds: 30)
            let json = String(decoding: try JSONEncoder().encode(sample), as: UTF8.self)
            _ = try await stack.redis.send("LPUSH", "\(stack.prefix)samples", json)
        }

        let port = try freeLoopbackPort()
        let console = try LeaseholdExecutable.start(
            ["console", "--host", "127.0.0.1", "--port", String(port)], name: "console", in: stack.directory,
            environment: stack.environment.merging(["LEASEHOLD_CONSOLE_TOKEN": Self.token]) { $1 })
        let url = "http://127.0.0.1:\(port)"
        let deadline = ContinuousClock.now + .seconds(30)
        while (try? await stack.fetch("\(url)/healthz"))?.status != 200 {
            guard console.isRunning, ContinuousClock.now < deadline else {
                throw TestSetupError("the console did not start:\n\(console.output)")
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        let browser = try await WebDriverSession.start(in: stack.directory)
        do {
            try await Self.walkThrough(
                browser, url: url, stack: stack, replayable: replayable, hostile: hostile)
        } catch {
            try? await browser.screenshot(to: Self.screenshots.appendingPathComponent("failure.png"))
            await browser.quit()
            await console.stop(signal: SIGTERM, timeout: .seconds(5))
            _ = await stack.shutdown()
            throw error
        }
        await browser.quit()
        await console.stop(signal: SIGTERM, timeout: .seconds(10))
        #expect(console.exitStatus == 0, "the console exits 0 on SIGTERM")
        _ = await stack.shutdown()
    }

    static func walkThrough(
        _ browser: WebDriverSession, url: String, stack: ProcessStack, replayable: Int64, hostile: Int64
    ) async throws {
        func shot(_ name: String) async throws {
            try await browser.screenshot(to: screenshots.appendingPathComponent("\(name).png"))
        }

        // Without a login every page leads to the login form, and a form post is refused.
        try await browser.open("\(url)/dead-letters")
        #expect(try await browser.currentURL.contains("/login?next=%2Fdead-letters"))
        try await shot("01-login")
        var anonymous = HTTPClientRequest(url: "\(url)/dead-letters/replay")
        anonymous.method = .POST
        anonymous.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
        anonymous.body = .bytes(ByteBuffer(string: "scope=all&confirm=yes"))
        #expect(try await stack.http.execute(anonymous, timeout: .seconds(10)).status.code == 403)

        // Log in: back to the page asked for; then the overview.
        try await browser.element("#name").type("Ann Operator")
        try await browser.element("#token").type(token)
        try await browser.clickAndWait("form.login button")
        #expect(try await browser.currentURL == "\(url)/dead-letters")
        try await browser.open("\(url)/")
        // Wait for a few samples after the traffic so the chart has a line.
        try await Task.sleep(for: .seconds(1))
        try await browser.open("\(url)/")
        let overview = try await browser.text
        #expect(overview.contains("Overview"))
        #expect(overview.contains("\(stack.prefix)stream:bookings"))
        #expect(overview.contains("Ann Operator"))
        #expect(!(try await browser.element("svg.chart polyline").id.isEmpty), "the chart has a throughput line")
        try await shot("02-overview")

        // Filter the dead letters by error text.
        try await browser.open("\(url)/dead-letters")
        try await browser.element("input[name=error]").type("lock timeout")
        try await browser.clickAndWait("form.filters button")
        let filtered = try await browser.text
        #expect(filtered.contains("1 matching"))
        #expect(filtered.contains("api:console-replay") && !filtered.contains("api:console-other"))
        try await shot("03-dead-letters-filtered")

        // A hostile payload is shown as text.
        try await browser.open("\(url)/dead-letters/\(hostile)")
        #expect(try await browser.text.contains("<script>alert(1)</script>"), "shown as text, not run")
        try await shot("04-dead-letter-escaped")

        // A bad CSRF token is refused and changes nothing.
        try await browser.execute("document.querySelector('form.actions input[name=csrf]').value = 'forged'")
        try await browser.clickAndWait("form.actions button")
        let refused = try await browser.text
        #expect(refused.contains("Refused") && refused.contains("CSRF token does not match"))
        try await shot("05-refused-bad-csrf")
        #expect(try await Self.status(of: hostile, stack) == "dead")

        // Open the replayable letter from the filtered list, replay it: a dry run, then the replay.
        try await browser.open("\(url)/dead-letters?error=lock+timeout")
        try await browser.clickAndWait("a[href='/dead-letters/\(replayable)']")
        let detail = try await browser.text
        #expect(detail.contains("Dead letter \(replayable)") && detail.contains("worker-a"))
        try await shot("06-dead-letter")
        try await browser.clickAndWait("form.actions button")
        #expect(try await browser.text.contains("Replay 1 dead letter?"))
        try await shot("07-replay-dry-run")
        try await browser.clickAndWait("form.actions button")
        let after = try await browser.text
        #expect(after.contains("Ann Operator replayed 1 dead letter"))
        #expect(!after.contains("api:console-replay"), "gone from the list of dead letters")
        try await shot("08-replayed")

        // The worker processes it: its message page shows the inbox row's outcome.
        let deadline = ContinuousClock.now + .seconds(30)
        while try await stack.postgres.query("SELECT 1 FROM inbox WHERE message_key = 'api:console-replay'").isEmpty {
            guard ContinuousClock.now < deadline else { throw TestSetupError("the replayed booking was not processed") }
            try await Task.sleep(for: .milliseconds(100))
        }
        try await browser.open("\(url)/messages/api:console-replay")
        let message = try await browser.text
        #expect(message.contains("booked"))
        try await shot("09-message-processed")
        #expect(try await Self.status(of: replayable, stack) == "replayed")
    }

    @discardableResult
    static func deadLetter(_ stack: ProcessStack, key: String, payload: String, error: String) async throws -> Int64 {
        let history = #"[{"at":"2026-01-02T10:00:00Z","attempt":1,"worker":"worker-a","error":"timeout"}]"#
        return try await stack.postgres.query(
            """
            INSERT INTO dead_letters (message_key, stream, entry_id, kind, payload, attempts, last_error,
                                      error_history, first_seen_at)
            VALUES (\(key), \(stack.stream("bookings")), \(UUID().uuidString), 'booking', \(Array(payload.utf8)), 8,
                    \(error), \(PostgresJSONB(history)), now())
            RETURNING id
            """
        ).single().decode(Int64.self, at: 0)
    }

    static func status(of id: Int64, _ stack: ProcessStack) async throws -> String {
        try await stack.postgres.query("SELECT status FROM dead_letters WHERE id = \(id)").single()
            .decode(String.self, at: 0)
    }
}
