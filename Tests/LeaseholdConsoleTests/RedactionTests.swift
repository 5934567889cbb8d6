import AsyncHTTPClient
import Foundation
import LeaseholdConsole
import LeaseholdLocalStack
import LeaseholdPostgres
import LeaseholdTesting
import NIOCore
import NIOHTTP1
import Testing

/// Redaction end to end: a YooKassa notification carrying card details, a receipt's email and
/// phone, a description and metadata, and hostile entries (invalid JSON, escaped and repeated
/// keys, markup, a huge payload, an entry without its fields) are dead-lettered by real roles;
/// then every console page that can show them (the `leasehold console` executable, over HTTP),
/// `leasehold dlq list|show` and `leasehold payments show` and the logs of every role show none
/// of their values, until an operator reveals one (audited) or passes `--reveal`.
@Suite("Redaction: pages, commands and logs", .enabled(if: IntegrationEnvironment.isAvailable))
struct RedactionTests {
    /// The values that must appear nowhere unless revealed.
    static let secrets = [
        "427693", "8841", "2039", "Rostislav", "Quimby", "rquimby@example.org", "79161234567",  // PII notification
        "SECRET-HOSTILE-a1", "SECRET-ESCAPED-b2", "SECRET-NESTED-c3", "SECRET-TWICE-c4", "SECRET-HUGE-d4",
        "SECRET-RAW-e5", "SECRET-DUPLICATE-g7",
    ]

    static let piiNotification = """
        {"type":"notification","event":"payment.succeeded","object":{"id":"pay-pii","status":"succeeded",\
        "amount":{"value":"1990.10","currency":"RUB"},"created_at":"2026-11-22T10:00:00.000Z","paid":true,\
        "payment_method":{"type":"bank_card","id":"pm-1","saved":false,"title":"Bank card *8841",\
        "card":{"first6":"427693","last4":"8841","expiry_month":"07","expiry_year":"2039","card_type":"Mir"}},\
        "description":"Order for Rostislav Quimby","metadata":{"email":"rquimby@example.org"},\
        "receipt":{"customer":{"email":"rquimby@example.org","phone":"79161234567"}}}}
        """

    /// Hostile payloads, each put on the yookassa stream as ingress would (key, kind, payload).
    static let hostile: [(key: String, payload: String)] = [
        ("yk:payment.succeeded:hostile-1", #"{"username":"SECRET-HOSTILE-a1","x":"<script>alert(1)</script>"#),
        (
            "yk:payment.succeeded:hostile-2",
            #"{"user\u006eame":"SECRET-ESCAPED-b2","a":[{"b":{"phone_number":"SECRET-NESTED-c3"}}],"#
                + #""c":[{"first_name":"SECRET-TWICE-c4"},{"first_name":"SECRET-TWICE-c4"}],"#
                + #""note":"<img src=x onerror=alert(1)>"}"#
        ),
        // The same key twice in one object.
        ("yk:payment.succeeded:hostile-4", #"{"event":"x","username":"SECRET-DUPLICATE-g7","username":"y"}"#),
        (
            "yk:payment.succeeded:hostile-3",
            #"{"filler":""# + String(repeating: "x", count: 300_000)
                + #"","contact":{"phone_number":"SECRET-HUGE-d4"}}"#
        ),
    ]

    @Test func noPageCommandOrLogShowsTheValuesUntilRevealedAndTheRevealIsAudited() async throws {
        let fast = [
            "LEASEHOLD_LEASE_TTL_MS": "1000", "LEASEHOLD_VISIBILITY_TIMEOUT_MS": "2000",
            "LEASEHOLD_SUPERVISOR_INTERVAL_MS": "100", "LEASEHOLD_RETRY_BASE_MS": "100",
            "LEASEHOLD_RETRY_MAX_DELAY_MS": "300", "LEASEHOLD_RETRY_OVERRIDES": "yookassa.notification=100:200:3",
        ]
        let stack = try await ProcessStack.start(
            ingress: 1, workers: 1, workerEnvironment: fast, ingressEnvironment: ProcessStack.loopbackYooKassaSource,
            supervisors: 1, supervisorEnvironment: fast)

        // The PII notification through ingress; its payment never appears, so after 3 attempts
        // the worker dead-letters it. The hostile entries are unreadable at once.
        let accepted = try await stack.request(
            .POST, "/yookassa/webhook", headers: [("Content-Type", "application/json")], body: Self.piiNotification)
        #expect(accepted.status == 200, "\(accepted.body)")
        let stream = stack.stream("yookassa")
        for (key, payload) in Self.hostile {
            try await stack.redis.send(
                "XADD", stream, "*", "key", key, "kind", "yookassa.notification", "payload", payload, "attempt", "1",
                "enqueued_at", "0")
        }
        // No key field at all: dead-lettered as undecodable, its raw fields kept as the payload.
        try await stack.redis.send(
            "XADD", stream, "*", "kind", "yookassa.notification", "payload", #"{"phone_number":"SECRET-RAW-e5"}"#)
        try await waitUntil(timeout: .seconds(90)) {
            try await stack.postgres.query("SELECT count(*) FROM dead_letters").single().decode(Int64.self, at: 0) == 6
        }
        let letters = try await stack.postgres.query("SELECT id, message_key FROM dead_letters ORDER BY id").map {
            try $0.decode(Int64.self, String.self)
        }
        let piiID = try #require(letters.first { $0.1 == "yk:payment.succeeded:pay-pii" }?.0)
        let hostileID = try #require(letters.first { $0.1 == "yk:payment.succeeded:hostile-2" }?.0)
        // The payment appears afterwards, so that `payments show` has its notifications to print.
        try await stack.createPayment("pay-pii", user: 501, chat: 501)

        // The console, as an operator runs it.
        let port = try freeLoopbackPort()
        let console = try stack.processes.start(
            .init(
                name: "console", arguments: ["console", "--host", "127.0.0.1", "--port", String(port)],
                log: stack.directory.appendingPathComponent("console.log"),
                environment: ["LEASEHOLD_CONSOLE_TOKEN": "redaction-test-token"]),
            freshLog: true)
        let browser = ConsoleHTTP(port: port, http: ConsoleHTTP.client())
        try await stack.processes.waitUntilAnswering(["/healthz"]) { try await browser.get($0).status }
        let cookie = try await browser.login(token: "redaction-test-token")

        var pages: [String: String] = [:]
        var paths = [
            "/", "/dead-letters", "/dead-letters?status=all", "/payments/pay-pii", "/payments?user=501",
            "/dead-letters?kind=undecodable",
        ]
        paths += letters.map { "/dead-letters/\($0.0)" }
        // Every message key but the undecodable entry's (no inbox key: the lookup redirects it).
        paths += letters.filter { $0.1.hasPrefix("yk:") }.map {
            "/messages/" + $0.1.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
        }
        for path in paths {
            let page = try await browser.get(path, cookie: cookie)
            #expect(page.status == 200, "\(path): \(page.status)")
            pages[path] = page.body
        }
        let detail = try #require(pages["/dead-letters/\(hostileID)"])
        #expect(detail.contains("[redacted]") && detail.contains("Reveal"), "\(detail)")
        #expect(!detail.contains("<img src=x") && detail.contains("&lt;img src=x"), "markup shown as text")
        let raw = try #require(pages["/dead-letters/\(letters.first { $0.1.hasSuffix("hostile-1") }!.0)"])
        #expect(raw.contains("[unparseable payload, "), "invalid JSON is not shown")

        // Every command an operator would run.
        var outputs: [String: String] = [:]
        for arguments in [
            ["dlq", "list", "--status", "all"], ["dlq", "list", "--json"], ["payments", "show", "pay-pii"],
            ["payments", "show", "pay-pii", "--json"], ["dlq", "stats"],
        ] + letters.flatMap({ [["dlq", "show", String($0.0)], ["dlq", "show", String($0.0), "--json"]] }) {
            let run = try await LeaseholdExecutable.run(arguments, in: stack.directory, environment: stack.environment)
            #expect(run.status == 0, "\(arguments): \(run.output)")
            outputs[arguments.joined(separator: " ")] = run.output
        }
        #expect(outputs["dlq show \(piiID)"]?.contains(#""payment_method" : "[redacted]""#) == true)

        for secret in Self.secrets {
            for (path, body) in pages { #expect(!body.contains(secret), "\(secret) on \(path)") }
            for (command, output) in outputs { #expect(!output.contains(secret), "\(secret) in `\(command)`") }
            for process in stack.processes.all {
                #expect(!process.output.contains(secret), "\(secret) in the log of \(process.name)")
            }
        }

        // --reveal shows the values and says so.
        let revealed = try await LeaseholdExecutable.run(
            ["dlq", "show", String(piiID), "--reveal"], in: stack.directory, environment: stack.environment)
        #expect(revealed.status == 0)
        #expect(revealed.output.contains("427693") && revealed.output.contains("rquimby@example.org"))
        #expect(revealed.output.contains("payload shown unredacted (--reveal)"))
        let bad = try await LeaseholdExecutable.run(
            ["dlq", "show", String(piiID)], in: stack.directory,
            environment: stack.environment.merging(["LEASEHOLD_REDACT_FIELDS": "a,,b"]) { $1 })
        #expect(bad.status != 0 && bad.output.contains("LEASEHOLD_REDACT_FIELDS=a,,b: an empty field"))
        #expect(!bad.output.contains("427693"))

        // The console's Reveal: once, recorded with who, which letter and why.
        let csrf = try ConsoleTestServer.hiddenValue("csrf", in: detail)
        let forged = try await browser.post(
            "/dead-letters/\(hostileID)/reveal", [("csrf", "forged")], cookie: cookie)
        #expect(forged.status == 403 && !forged.body.contains("SECRET-ESCAPED-b2"))
        let shown = try await browser.post(
            "/dead-letters/\(hostileID)/reveal", [("csrf", csrf), ("reason", "ticket 77")], cookie: cookie)
        #expect(shown.status == 200)
        for secret in ["SECRET-ESCAPED-b2", "SECRET-NESTED-c3", "SECRET-TWICE-c4"] {
            #expect(shown.body.contains(secret), "\(secret) revealed")
        }
        #expect(shown.body.contains("Shown unredacted to Ann"))
        #expect(!shown.body.contains("<img src=x"), "revealed, markup is still text")
        let (actor, action, scope, ids) = try await stack.postgres.query(
            "SELECT actor, action, scope, dead_letter_ids::text FROM console_actions"
        ).single().decode(String.self, String.self, String.self, String.self)
        #expect(actor == "Ann" && action == "reveal" && ids == "{\(hostileID)}", "\(actor) \(action) \(ids)")
        #expect(scope == "letter \(hostileID): ticket 77")
        let again = try await browser.get("/dead-letters/\(hostileID)", cookie: cookie)
        #expect(!again.body.contains("SECRET-ESCAPED-b2"), "a reload is redacted again")
        #expect(again.body.contains("reveal") && again.body.contains("ticket 77"), "the action is listed")
        #expect(console.output.contains("console reveal") && !console.output.contains("SECRET-ESCAPED-b2"))

        try await browser.http.shutdown()
        await stack.shutdown()
    }

    @Test func aReadOnlyConsoleOffersNoRevealAndRefusesOne() async throws {
        let server = try await ConsoleTestServer.start(readOnly: true)
        let cookie = try await server.login()
        let id = try await server.insertDeadLetter(key: "tg:9", payload: #"{"message":{"text":"SECRET-TEXT-f6"}}"#)
        let page = try await server.get("/dead-letters/\(id)", cookie: cookie)
        #expect(!page.body.contains("SECRET-TEXT-f6") && page.body.contains("[redacted]"))
        #expect(!page.body.contains("/reveal"))
        let csrf = try ConsoleTestServer.hiddenValue("csrf", in: page.body)
        let refused = try await server.post("/dead-letters/\(id)/reveal", [("csrf", csrf)], cookie: cookie)
        #expect(refused.status == 403 && !refused.body.contains("SECRET-TEXT-f6"))
        #expect(
            try await server.postgres.query("SELECT count(*) FROM console_actions").single().decode(Int64.self, at: 0)
                == 0)
        await server.shutdown()
    }
}
