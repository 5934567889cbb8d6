import Foundation
import LeaseholdLocalStack
import LeaseholdTesting
import Testing

extension NotifierTests {
    @Suite("Delivery and rate limits")
    struct DeliveryTests {
        @Test func everyRowIsSentOnceToItsChatWithTelegramsMessageID() async throws {
            try await FakeBotAPI.withServer { api in
                try await NotifierFixture.with(api) { fixture in
                    let replies = (1...40).map { (chat: Int64(1_000 + $0), text: "reply \($0) — ответ 🎉") }
                    let ids = try await fixture.insert(replies)
                    try fixture.startNotifier("notifier-a")
                    try await fixture.waitUntilSettled()

                    let calls = api.calls
                    #expect(calls.count == 40, "one call per row")
                    #expect(calls.allSatisfy { $0.method == "sendMessage" && $0.token == FakeBotAPI.token })
                    let rows = try await fixture.rows()
                    for (id, reply) in zip(ids, replies) {
                        let row = try #require(rows.first { $0.id == id })
                        let call = try #require(calls.first { $0.chatID == reply.chat })
                        #expect(row.status == "sent")
                        #expect(call.text == reply.text, "the text arrives byte for byte")
                        #expect(row.messageID != nil && row.messageID == call.messageID, "message_id recorded")
                        #expect(row.attempts == 1)
                    }
                    let metrics = try await fixture.metrics()
                    #expect(metricValue(metrics, "leasehold_notifier_sent_total", ["method": "sendMessage"]) == 40)
                    let statuses = await fixture.stopNotifiers()
                    #expect(statuses.values.allSatisfy { $0 == 0 }, "exit 0 on SIGTERM: \(statuses)")
                }
            }
        }

        @Test func ratesHoldForTheWholeBotAcrossNotifiersAndPerChat() async throws {
            try await FakeBotAPI.withServer { api in
                try await NotifierFixture.with(api) { fixture in
                    // 40 chats with one reply each, one private chat with four, one group with three.
                    var replies = (1...40).map { (chat: Int64(2_000 + $0), text: "r\($0)") }
                    replies += (1...4).map { (chat: Int64(77), text: "private \($0)") }
                    replies += (1...3).map { (chat: Int64(-100_777), text: "group \($0)") }
                    replies.shuffle()
                    _ = try await fixture.insert(replies)
                    let limits = [
                        "LEASEHOLD_NOTIFIER_RATE": "10", "LEASEHOLD_NOTIFIER_CHAT_INTERVAL_MS": "1000",
                        "LEASEHOLD_NOTIFIER_GROUP_CHAT_INTERVAL_MS": "1500",
                    ]
                    try fixture.startNotifier("notifier-a", environment: limits)
                    try fixture.startNotifier("notifier-b", environment: limits)
                    try await fixture.waitUntilSettled()

                    let rows = try await fixture.rows()
                    #expect(rows.allSatisfy { $0.status == "sent" })
                    #expect(
                        Set(rows.compactMap { $0.claimedBy?.split(separator: "#").first }).count == 2,
                        "both notifiers sent")

                    // The bot as a whole: never more than 10 claims in any second, exact on the
                    // database's clock (a call is made only after its claim commits). Arrival times at
                    // the fake API are stamped by this test process, which shares two cores with the
                    // rest of the suite, so they are only checked for the lower bound load cannot
                    // break: unlimited, the 47 would all arrive within a fraction of a second.
                    let claimed = rows.compactMap(\.claimedAt)
                    #expect(busiestWindow(claimed) <= 10, "claims in the busiest second: \(busiestWindow(claimed))")
                    let arrivals = api.calls.map(\.receivedAt)
                    let span = try #require(arrivals.max()).timeIntervalSince(try #require(arrivals.min()))
                    #expect(span >= 3.5, "47 messages at 10/s take at least 3.7 s, took \(span)")

                    // One chat: in insertion order, a second apart (1.5 s for the group).
                    for (chat, interval) in [(Int64(77), 1.0), (Int64(-100_777), 1.5)] {
                        let expected = replies.filter { $0.chat == chat }.map(\.text)
                        let calls = api.calls.filter { $0.chatID == chat }
                        #expect(calls.map(\.text) == expected, "chat \(chat) in order")
                        let claims = rows.filter { $0.chatID == chat }.compactMap(\.claimedAt)
                        for (earlier, later) in zip(claims, claims.dropFirst()) {
                            #expect(later.timeIntervalSince(earlier) >= interval, "chat \(chat): claims \(claims)")
                        }
                    }
                    let statuses = await fixture.stopNotifiers()
                    #expect(statuses.values.allSatisfy { $0 == 0 }, "\(statuses)")
                }
            }
        }

        @Test func otherMethodsAreCalledAsStoredAndUnknownOnesFailWithoutACall() async throws {
            try await FakeBotAPI.withServer { api in
                try await NotifierFixture.with(api) { fixture in
                    let answer = try await fixture.insert(chat: nil, text: "✅", method: "answerCallbackQuery")
                    let edit = try await fixture.insert(chat: 5, text: "edited", method: "editMessageText")
                    let unknown = try await fixture.insert(chat: 6, text: "x", method: "setWebhook")
                    try fixture.startNotifier("notifier-a")
                    try await fixture.waitUntilSettled()

                    #expect(try await fixture.row(answer).status == "sent")
                    #expect(try await fixture.row(answer).messageID == nil)
                    #expect(try await fixture.row(edit).status == "sent")
                    let refused = try await fixture.row(unknown)
                    #expect(refused.status == "failed")
                    #expect(refused.lastError?.contains("unsupported Bot API method setWebhook") == true)
                    #expect(api.calls.map(\.method).sorted() == ["answerCallbackQuery", "editMessageText"])
                    await fixture.stopNotifiers()
                }
            }
        }
    }
}
