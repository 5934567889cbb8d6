import Foundation
import LeaseholdLocalStack
import LeaseholdTesting
import Testing

extension NotifierTests {
    @Suite("Several notifiers, SIGTERM, SIGKILL")
    struct ConcurrencyTests {
        @Test func threeNotifiersNeverSendOneRowTwice() async throws {
            try await FakeBotAPI.withServer { api in
                try await NotifierFixture.with(api) { fixture in
                    // Fast limits so that the three really claim side by side, all the time.
                    let fast = [
                        "LEASEHOLD_NOTIFIER_RATE": "2000", "LEASEHOLD_NOTIFIER_CHAT_INTERVAL_MS": "0",
                        "LEASEHOLD_NOTIFIER_CONCURRENCY": "16", "LEASEHOLD_NOTIFIER_POLL_INTERVAL_MS": "10",
                    ]
                    for name in ["notifier-a", "notifier-b", "notifier-c"] {
                        try fixture.startNotifier(name, environment: fast)
                    }
                    for index in 0..<3 { try await fixture.waitUntilServing(index) }
                    // Rows arrive while the notifiers run, as they do in production.
                    var ids: [Int64] = []
                    for batch in 0..<12 {
                        ids += try await fixture.insert(
                            (0..<50).map { (chat: Int64(10_000 + batch * 50 + $0), text: "reply-\(batch)-\($0)") })
                    }
                    try await fixture.waitUntilSettled()
                    try await Task.sleep(for: .seconds(1))

                    let calls = api.calls
                    let byText = Dictionary(grouping: calls, by: { $0.text ?? "" })
                    #expect(calls.count == 600, "one call per row, \(calls.count) calls")
                    #expect(byText.count == 600 && byText.values.allSatisfy { $0.count == 1 }, "no reply sent twice")
                    let rows = try await fixture.rows()
                    #expect(rows.count == 600 && rows.allSatisfy { $0.status == "sent" && $0.attempts == 1 })
                    for row in rows {
                        #expect(row.messageID == byText[row.text ?? ""]?.first?.messageID, "row \(row.id)")
                    }
                    let senders = Dictionary(
                        grouping: rows, by: { String($0.claimedBy?.split(separator: "#").first ?? "") })
                    #expect(senders.count == 3, "all three notifiers sent: \(senders.mapValues(\.count))")
                    let statuses = await fixture.stopNotifiers()
                    #expect(statuses.values.allSatisfy { $0 == 0 }, "\(statuses)")
                }
            }
        }

        @Test func sigtermFinishesCallsInFlightAndLeavesTheRestPending() async throws {
            try await FakeBotAPI.withServer { api in
                try await NotifierFixture.with(api) { fixture in
                    api.setDelay(.milliseconds(1500))
                    let ids = try await fixture.insert((1...10).map { (chat: Int64(300 + $0), text: "slow \($0)") })
                    let first = try fixture.startNotifier(
                        "notifier-a", environment: ["LEASEHOLD_NOTIFIER_CONCURRENCY": "3"])
                    try await api.waitForCalls(3)
                    first.send(SIGTERM)
                    #expect(await first.waitForExit(timeout: .seconds(30)))
                    #expect(first.exitStatus == 0, "\(first.output)")

                    // The three calls in flight finished and were recorded; nothing is left claimed.
                    var rows = try await fixture.rows()
                    #expect(rows.filter { $0.status == "sending" }.isEmpty, "no row left claimed")
                    let sent = rows.filter { $0.status == "sent" }
                    #expect(sent.count == api.calls.count, "every call that reached the API is recorded as sent")
                    #expect(sent.count >= 3)
                    let pending = rows.filter { $0.status == "pending" }
                    #expect(pending.count == 10 - sent.count && pending.allSatisfy { $0.attempts == 0 })

                    // A new notifier sends the rest, and only the rest.
                    api.setDelay(.zero)
                    try fixture.startNotifier("notifier-b")
                    try await fixture.waitUntilSettled()
                    rows = try await fixture.rows()
                    #expect(rows.map(\.id) == ids && rows.allSatisfy { $0.status == "sent" })
                    let texts = api.calls.compactMap(\.text)
                    #expect(texts.count == 10 && Set(texts).count == 10, "each reply once: \(texts)")
                    await fixture.stopNotifiers()
                }
            }
        }

        @Test func callsStillRunningAtTheDrainTimeoutAreHandedBackNotLeftClaimed() async throws {
            try await FakeBotAPI.withServer { api in
                try await NotifierFixture.with(api) { fixture in
                    api.setDelay(.seconds(4))
                    let ids = try await fixture.insert((1...3).map { (chat: Int64(600 + $0), text: "late \($0)") })
                    let notifier = try fixture.startNotifier(
                        "notifier-a", environment: ["LEASEHOLD_DRAIN_TIMEOUT_MS": "300"])
                    try await api.waitForCalls(3)
                    let stopping = ContinuousClock.now
                    notifier.send(SIGTERM)
                    #expect(await notifier.waitForExit(timeout: .seconds(30)))
                    #expect(notifier.exitStatus == 0, "\(notifier.output)")
                    #expect(ContinuousClock.now - stopping < .seconds(3), "it did not wait for the slow API")

                    for id in ids {
                        let row = try await fixture.row(id)
                        #expect(row.status == "pending", "row \(id) is \(row.status)")
                        #expect(row.attempts == 1, "Telegram may have received it: the attempt counts")
                        #expect(row.lastError?.contains("cancelled") == true, "\(row.lastError ?? "")")
                    }
                    api.setDelay(.zero)
                    try fixture.startNotifier("notifier-b")
                    try await fixture.waitUntilSettled()
                    #expect(try await fixture.rows().allSatisfy { $0.status == "sent" })
                    await fixture.stopNotifiers()
                }
            }
        }

        @Test func staleClaimsOfDeadNotifiersAreRetriedUntilTheAttemptsRunOut() async throws {
            try await FakeBotAPI.withServer { api in
                try await NotifierFixture.with(api) { fixture in
                    // Two rows left `sending` an hour ago by a notifier that is gone: one with attempts
                    // to spare, one that has used them all (each attempt ended with its notifier dead).
                    let spare = try await fixture.insert(chat: 700, text: "spare")
                    let spent = try await fixture.insert(chat: 701, text: "spent")
                    try await fixture.postgres.execute(
                        """
                        UPDATE outbox SET status = 'sending', claimed_by = 'ghost#1',
                            claimed_at = now() - interval '1 hour',
                            attempts = CASE WHEN id = \(spare) THEN 1 ELSE 3 END
                        """)
                    try fixture.startNotifier("notifier-a", environment: ["LEASEHOLD_NOTIFIER_MAX_ATTEMPTS": "3"])
                    try await fixture.waitUntilSettled()

                    let retried = try await fixture.row(spare)
                    #expect(retried.status == "sent" && retried.attempts == 2)
                    let failed = try await fixture.row(spent)
                    #expect(failed.status == "failed")
                    #expect(
                        failed.lastError?.hasPrefix("gave up after 3 attempts: claim ghost#1 expired") == true,
                        "\(failed.lastError ?? "")")
                    #expect(api.calls.map(\.chatID) == [700])
                    #expect(metricValue(try await fixture.metrics(), "leasehold_notifier_reclaimed_total") == 2)
                    await fixture.stopNotifiers()
                }
            }
        }

        /// The one way a reply goes out twice, shown on purpose: the notifier dies (SIGKILL) after
        /// Telegram received the call and before the result was recorded. The row stays `sending`
        /// until the claim timeout — never taken back earlier — and is then sent again.
        @Test func aNotifierKilledMidCallHasItsRowSentAgainAfterTheClaimTimeout() async throws {
            try await FakeBotAPI.withServer { api in
                try await NotifierFixture.with(api) { fixture in
                    api.script(.hang(.seconds(4)), for: .chat(900), times: 1)
                    let id = try await fixture.insert(chat: 900, text: "in flight when killed")
                    let timeouts = [
                        "LEASEHOLD_NOTIFIER_REQUEST_TIMEOUT_MS": "5000", "LEASEHOLD_NOTIFIER_CLAIM_TIMEOUT_MS": "10000",
                    ]
                    let doomed = try fixture.startNotifier("notifier-a", environment: timeouts)
                    try await api.waitForCalls(1)
                    doomed.send(SIGKILL)
                    #expect(await doomed.waitForExit(timeout: .seconds(10)))
                    #expect(try await fixture.row(id).status == "sending")

                    try fixture.startNotifier("notifier-b", environment: timeouts)
                    try await fixture.waitUntilSettled(timeout: .seconds(60))
                    let calls = api.calls
                    #expect(calls.count == 2, "sent again: the documented residual risk")
                    if calls.count == 2 {
                        let gap = calls[1].receivedAt.timeIntervalSince(calls[0].receivedAt)
                        #expect(gap >= 10, "never taken back before the claim timeout (\(gap) s)")
                    }
                    let row = try await fixture.row(id)
                    #expect(row.status == "sent")
                    #expect(row.attempts == 2)
                    #expect(row.lastError?.contains("expired") == true, "\(row.lastError ?? "")")
                    #expect(metricValue(try await fixture.metrics(1), "leasehold_notifier_reclaimed_total") == 1)
                    await fixture.stopNotifiers()
                }
            }
        }
    }
}
