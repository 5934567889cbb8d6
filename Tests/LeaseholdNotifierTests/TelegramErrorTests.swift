import Foundation
import LeaseholdLocalStack
import LeaseholdTesting
import Testing

extension NotifierTests {
    @Suite("Telegram's errors: 429, 5xx, timeouts, 400/403, a rejected token")
    struct TelegramErrorTests {
        @Test func aTooManyRequestsAnswerPausesEveryNotifierForRetryAfter() async throws {
            try await FakeBotAPI.withServer { api in
                try await NotifierFixture.with(api) { fixture in
                    try fixture.startNotifier("notifier-a")
                    try fixture.startNotifier("notifier-b")
                    try await fixture.waitUntilServing(0)
                    try await fixture.waitUntilServing(1)
                    api.script(.tooManyRequests(retryAfter: 3), times: 1)
                    let first = try await fixture.insert(chat: 1, text: "first")
                    try await api.waitForCalls(1)
                    // Once the pause is recorded, nothing goes out — from either notifier — until it ends.
                    try await waitUntil(timeout: .seconds(10), "the pause is recorded") {
                        try await fixture.postgres.query(
                            "SELECT paused_until > clock_timestamp() FROM outbox_throttle"
                        ).single().decode(Bool.self, at: 0)
                    }
                    let limited = try #require(api.calls.first)
                    #expect(limited.status == 429)
                    let others = try await fixture.insert((2...6).map { (chat: Int64($0), text: "next \($0)") })
                    // One scrape shows both: the waiting replies and the pause holding them. (Read apart, a
                    // slow machine can let the 3-s pause end between the two scrapes.)
                    try await waitUntil(timeout: .seconds(10), "the gauges show the replies waiting out the pause") {
                        let scrape = try await fixture.metrics(1)
                        return metricValue(scrape, "leasehold_outbox_pending") >= 5
                            && metricValue(scrape, "leasehold_notifier_paused_seconds") > 0
                    }
                    try await fixture.waitUntilSettled()

                    let calls = api.calls
                    #expect(calls.count == 7, "the limited reply once more, then five others")
                    for call in calls.dropFirst() {
                        let after = call.receivedAt.timeIntervalSince(limited.receivedAt)
                        #expect(after >= 3.0, "\(call.chatID ?? 0) went out \(after) s after the 429")
                    }
                    let row = try await fixture.row(first)
                    #expect(row.status == "sent")
                    #expect(row.attempts == 1, "a 429 does not use up an attempt")
                    #expect(row.lastError?.hasPrefix("429 Too Many Requests") == true)
                    for id in others { #expect(try await fixture.row(id).status == "sent") }
                    let rateLimited =
                        try await metricValue(fixture.metrics(0), "leasehold_notifier_rate_limited_total")
                        + metricValue(fixture.metrics(1), "leasehold_notifier_rate_limited_total")
                    #expect(rateLimited == 1)
                    let statuses = await fixture.stopNotifiers()
                    #expect(statuses.values.allSatisfy { $0 == 0 }, "\(statuses)")
                }
            }
        }

        @Test func forbiddenAndBadRequestFailTheRowForGoodAndTheRestContinue() async throws {
            try await FakeBotAPI.withServer { api in
                try await NotifierFixture.with(api) { fixture in
                    api.script(.forbidden("bot was blocked by the user"), for: .chat(13), times: nil)
                    api.script(.badRequest("chat not found"), for: .chat(14), times: nil)
                    let ids = try await fixture.insert((10...20).map { (chat: Int64($0), text: "hello \($0)") })
                    try fixture.startNotifier("notifier-a")
                    try await fixture.waitUntilSettled()
                    // Give a buggy retry loop the time to show itself.
                    try await Task.sleep(for: .seconds(2))

                    let rows = try await fixture.rows()
                    for row in rows {
                        let calls = api.calls.filter { $0.chatID == row.chatID }
                        #expect(calls.count == 1, "chat \(row.chatID ?? 0): one call, never retried")
                        switch row.chatID {
                        case 13:
                            #expect(row.status == "failed")
                            #expect(row.lastError == "403 Forbidden: bot was blocked by the user")
                        case 14:
                            #expect(row.status == "failed")
                            #expect(row.lastError == "400 Bad Request: chat not found")
                        default:
                            #expect(row.status == "sent")
                        }
                    }
                    #expect(rows.map(\.id) == ids)
                    let metrics = try await fixture.metrics()
                    #expect(metricValue(metrics, "leasehold_notifier_failed_total", ["reason": "rejected"]) == 2)
                    #expect(metricValue(metrics, "leasehold_notifier_sent_total") == 9)
                    await fixture.stopNotifiers()
                }
            }
        }

        @Test func serverErrorsAndTimeoutsAreRetriedWithBackoff() async throws {
            try await FakeBotAPI.withServer { api in
                try await NotifierFixture.with(api) { fixture in
                    api.script(.serverError(500), for: .chat(30), times: 2)
                    api.script(.hang(.seconds(5)), for: .chat(31), times: 1)
                    let flaky = try await fixture.insert(chat: 30, text: "after two 500s")
                    let slow = try await fixture.insert(chat: 31, text: "after a timeout")
                    try fixture.startNotifier(
                        "notifier-a",
                        environment: [
                            "LEASEHOLD_NOTIFIER_RETRY_BASE_MS": "400", "LEASEHOLD_NOTIFIER_REQUEST_TIMEOUT_MS": "2000",
                            "LEASEHOLD_NOTIFIER_CLAIM_TIMEOUT_MS": "10000",
                        ])
                    try await fixture.waitUntilSettled()

                    let flakyCalls = api.calls.filter { $0.chatID == 30 }
                    #expect(flakyCalls.map(\.status) == [500, 500, 200])
                    if flakyCalls.count == 3 {
                        // Equal jitter: attempt n waits at least half of 400 ms · 2^(n-1).
                        #expect(flakyCalls[1].receivedAt.timeIntervalSince(flakyCalls[0].receivedAt) >= 0.2)
                        #expect(flakyCalls[2].receivedAt.timeIntervalSince(flakyCalls[1].receivedAt) >= 0.4)
                    }
                    let flakyRow = try await fixture.row(flaky)
                    #expect(flakyRow.status == "sent" && flakyRow.attempts == 3)
                    #expect(flakyRow.messageID == flakyCalls.last?.messageID)

                    let slowCalls = api.calls.filter { $0.chatID == 31 }
                    #expect(slowCalls.count == 2, "timed out once, then sent")
                    let slowRow = try await fixture.row(slow)
                    #expect(slowRow.status == "sent" && slowRow.attempts == 2)
                    #expect(slowRow.lastError?.hasPrefix("network:") == true, "\(slowRow.lastError ?? "")")

                    let metrics = try await fixture.metrics()
                    #expect(metricValue(metrics, "leasehold_notifier_retried_total", ["reason": "server_error"]) == 2)
                    #expect(metricValue(metrics, "leasehold_notifier_retried_total", ["reason": "network"]) == 1)
                    await fixture.stopNotifiers()
                }
            }
        }

        @Test func aRowThatKeepsFailingGivesUpAfterTheMaximumAttempts() async throws {
            try await FakeBotAPI.withServer { api in
                try await NotifierFixture.with(api) { fixture in
                    api.script(.serverError(502), for: .chat(40), times: nil)
                    let doomed = try await fixture.insert(chat: 40, text: "never")
                    let fine = try await fixture.insert(chat: 41, text: "fine")
                    try fixture.startNotifier(
                        "notifier-a",
                        environment: [
                            "LEASEHOLD_NOTIFIER_RETRY_BASE_MS": "100", "LEASEHOLD_NOTIFIER_MAX_ATTEMPTS": "3",
                        ])
                    try await fixture.waitUntilSettled()
                    try await Task.sleep(for: .seconds(1))

                    let row = try await fixture.row(doomed)
                    #expect(row.status == "failed")
                    #expect(row.attempts == 3)
                    #expect(row.lastError == "gave up after 3 attempts: 502 Internal Server Error")
                    #expect(api.calls.filter { $0.chatID == 40 }.count == 3)
                    #expect(try await fixture.row(fine).status == "sent")
                    let metrics = try await fixture.metrics()
                    #expect(metricValue(metrics, "leasehold_notifier_failed_total", ["reason": "gave_up"]) == 1)
                    await fixture.stopNotifiers()
                }
            }
        }

        @Test func aRejectedTokenFailsNoRowAndStopsSending() async throws {
            try await FakeBotAPI.withServer { api in
                try await NotifierFixture.with(api) { fixture in
                    api.script(.unauthorized, times: 1)
                    let first = try await fixture.insert(chat: 50, text: "one")
                    try fixture.startNotifier("notifier-a")
                    try await api.waitForCalls(1)
                    try await waitUntil(timeout: .seconds(10), "the row is handed back") {
                        try await fixture.row(first).status == "pending"
                    }
                    let second = try await fixture.insert(chat: 51, text: "two")
                    try await Task.sleep(for: .seconds(2))

                    #expect(api.calls.count == 1, "no call while the token is known to be rejected")
                    let row = try await fixture.row(first)
                    #expect(row.attempts == 0, "not the row's fault")
                    #expect(row.lastError?.hasPrefix("401 Unauthorized") == true)
                    #expect(try await fixture.row(second).status == "pending")
                    #expect(try await fixture.status("/readyz") == 503, "not ready while the token is rejected")
                    #expect(metricValue(try await fixture.metrics(), "leasehold_notifier_token_rejected_total") == 1)
                    #expect(fixture.processes[0].output.contains("check TELEGRAM_BOT_TOKEN"))
                    await fixture.stopNotifiers()
                }
            }
        }
    }
}
