import Foundation
import LeaseholdLocalStack
import LeaseholdTesting
import Testing

extension NotifierTests {
    @Suite("The token stays secret; bad configuration is refused clearly")
    struct SecretAndConfigurationTests {
        static let secret = String(FakeBotAPI.token.split(separator: ":")[1])

        @Test func theTokenAppearsInNoLogLineAndNoStoredError() async throws {
            try await FakeBotAPI.withServer { api in
                try await NotifierFixture.with(api) { fixture in
                    // Every error path, including a "proxy" that echoes the request URL in its body.
                    api.script(.serverError(500), for: .chat(1), times: 1)
                    api.script(.forbidden("bot was blocked by the user"), for: .chat(2), times: 1)
                    api.script(.tooManyRequests(retryAfter: 1), for: .chat(3), times: 1)
                    api.script(.hang(.seconds(3)), for: .chat(4), times: 1)
                    api.script(
                        .raw(status: 502, body: "<html>upstream /bot\(FakeBotAPI.token)/sendMessage failed</html>"),
                        for: .chat(5), times: 1)
                    api.script(.unauthorized, for: .chat(6), times: 1)
                    for chat in 1...6 { try await fixture.insert(chat: Int64(chat), text: "secret test \(chat)") }
                    // A request timeout well above this busy machine's scheduling delays, so the
                    // 502 row's retry does not time out and overwrite the stored 502 checked below.
                    let verbose = [
                        "LOG_LEVEL": "trace", "LEASEHOLD_NOTIFIER_REQUEST_TIMEOUT_MS": "1500",
                        "LEASEHOLD_NOTIFIER_CLAIM_TIMEOUT_MS": "5000", "LEASEHOLD_NOTIFIER_RETRY_BASE_MS": "100",
                    ]
                    try fixture.startNotifier("notifier-a", environment: verbose)
                    try await waitUntil(timeout: .seconds(30), "every error path was taken") {
                        let statuses = Set(api.calls.map(\.status))
                        return [500, 403, 429, 502, 401].allSatisfy(statuses.contains)
                            && api.calls.filter { $0.chatID == 4 }.count >= 1
                    }
                    try await Task.sleep(for: .seconds(2))
                    // …and one whose API does not listen at all (connection refused).
                    var unreachable = verbose
                    unreachable["TELEGRAM_API_BASE_URL"] = "http://127.0.0.1:\(try freeLoopbackPort())"
                    let stored = try await fixture.postgres.query(
                        """
                        SELECT coalesce(string_agg(last_error, ' | '), '') FROM outbox
                        UNION ALL SELECT coalesce(reason, '') FROM outbox_throttle
                        """
                    ).map { try $0.decode(String.self, at: 0) }.joined(separator: "\n")
                    await fixture.stopNotifiers()
                    let lonely = try await fixture.insert(chat: 7, text: "nobody listens")
                    try fixture.startNotifier("notifier-b", environment: unreachable)
                    try await waitUntil(timeout: .seconds(30), "the unreachable API was tried") {
                        try await fixture.row(lonely).lastError?.hasPrefix("network:") == true
                    }
                    let exits = await fixture.stopNotifiers()
                    #expect(exits.values.allSatisfy { $0 == 0 }, "\(exits)")

                    let logs = fixture.processes.map(\.output).joined(separator: "\n")
                    #expect(logs.contains("will retry"), "the failures were logged")
                    #expect(!logs.contains(Self.secret), "the token is in a log line")
                    #expect(
                        stored.contains("502") && stored.contains("bot***"),
                        "the proxy's answer was stored, redacted: \(stored)")
                    let lonelyError = try await fixture.row(lonely).lastError ?? ""
                    #expect(!lonelyError.contains(Self.secret))
                    #expect(!stored.contains(Self.secret), "the token is in outbox.last_error: \(stored)")
                }
            }
        }

        @Test(arguments: [
            ([String: String](), "TELEGRAM_BOT_TOKEN is not set"),
            (["TELEGRAM_BOT_TOKEN": "12345:abc/../../setWebhook?url=x"], "does not look like one"),
            (
                ["TELEGRAM_BOT_TOKEN": FakeBotAPI.token, "TELEGRAM_API_BASE_URL": "ftp://example.org"],
                "TELEGRAM_API_BASE_URL must be"
            ),
            (
                [
                    "TELEGRAM_BOT_TOKEN": FakeBotAPI.token, "LEASEHOLD_NOTIFIER_REQUEST_TIMEOUT_MS": "10000",
                    "LEASEHOLD_NOTIFIER_CLAIM_TIMEOUT_MS": "15000",
                ], "at least twice"
            ),
            (
                ["TELEGRAM_BOT_TOKEN": FakeBotAPI.token, "LEASEHOLD_NOTIFIER_RATE": "lots"],
                "LEASEHOLD_NOTIFIER_RATE=lots is not an integer"
            ),
        ])
        func badConfigurationIsRefusedWithAClearErrorAndNoToken(environment: [String: String], expected: String)
            async throws
        {
            var clean = environment
            clean["TELEGRAM_BOT_TOKEN"] = environment["TELEGRAM_BOT_TOKEN"] ?? ""
            clean["TELEGRAM_BOT_TOKEN_FILE"] = ""
            clean["POSTGRES_URL"] = "postgres://nobody@127.0.0.1:1/none"
            let result = try await LeaseholdExecutable.run(
                ["notifier"], in: try makeTemporaryDirectory("notifier-config"), environment: clean,
                timeout: .seconds(30))
            #expect(result.status != 0)
            #expect(result.output.contains(expected), "\(result.output)")
            #expect(!result.output.contains("abc/../..") && !result.output.contains(Self.secret))
        }

        @Test func checkCallsGetMeAndReportsTheBotOrTelegramsRefusal() async throws {
            try await FakeBotAPI.withServer { api in
                let directory = try makeTemporaryDirectory("notifier-check")
                let environment = ["TELEGRAM_BOT_TOKEN": FakeBotAPI.token, "TELEGRAM_API_BASE_URL": api.url]
                let good = try await LeaseholdExecutable.run(
                    ["notifier", "--check"], in: directory, environment: environment)
                #expect(good.status == 0, "\(good.output)")
                #expect(good.output.contains("@leasehold_test_bot"))

                api.script(.unauthorized, for: .method("getMe"), times: 1)
                let refused = try await LeaseholdExecutable.run(
                    ["notifier", "--check"], in: directory, environment: environment)
                #expect(refused.status == 1)
                #expect(refused.output.contains("401 Unauthorized"), "\(refused.output)")
                #expect(!(good.output + refused.output).contains(Self.secret))
                #expect(api.calls.map(\.method) == ["getMe", "getMe"])
            }
        }

        @Test func helpNamesEveryVariableTheNotifierReads() async throws {
            let result = try await LeaseholdExecutable.run(
                ["notifier", "--help"], in: try makeTemporaryDirectory("notifier-help"))
            func read(_ path: String) throws -> String {
                try String(contentsOf: LeaseholdExecutable.packageRoot.appendingPathComponent(path), encoding: .utf8)
            }
            // The command reads some variables itself (the token) and the rest through its settings,
            // defined in Settings.swift's `enum Notifier`.
            let settings = try read("Sources/leasehold/Settings.swift")
            let notifier = try #require(settings.range(of: "enum Notifier {"))
            let end = settings[notifier.upperBound...].range(of: "\n    enum ")?.lowerBound ?? settings.endIndex
            let source = try read("Sources/leasehold/NotifierCommand.swift") + settings[notifier.lowerBound..<end]
            // Every "NAME" the command reads from the environment …
            let pattern = try NSRegularExpression(pattern: #""((?:TELEGRAM|LEASEHOLD)_[A-Z_]+)""#)
            let names = Set(
                pattern.matches(in: source, range: NSRange(source.startIndex..., in: source)).compactMap {
                    Range($0.range(at: 1), in: source).map { String(source[$0]) }
                })
            #expect(names.count >= 15)
            // … is in --help (ArgumentParser wraps lines, so compare without whitespace).
            let help = result.output.filter { !$0.isWhitespace }
            for name in names.sorted() { #expect(help.contains(name), "\(name) is not in --help") }
            for name in ["LEASEHOLD_METRICS_PORT", "LEASEHOLD_METRICS_HOST", "POSTGRES_URL", "LOG_LEVEL"] {
                #expect(help.contains(name), "\(name) is not in --help")
            }
        }
    }
}
