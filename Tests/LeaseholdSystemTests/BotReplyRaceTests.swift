import Foundation
import LeaseholdLocalStack
import LeaseholdTesting
import Testing

/// The seed's scenario to its end: the users hear about it. 500 users race for one slot through
/// ingress and workers; two `leasehold notifier` processes deliver the replies to a fake Bot API.
extension SystemTests {
    @Suite("Bot replies of a booking race")
    struct BotReplyRaceTests {
        static let booked = "🎉 Вы успешно записаны!"
        static let taken = "😔 К сожалению, это время уже занято."

        @Test func everyOutcomeOfAFiveHundredUserRaceReachesItsChatExactlyOnce() async throws {
            try await FakeBotAPI.withServer { api in
                let stack = try await ProcessStack.start(ingress: 2, workers: 3)
                let slot = try #require(try await stack.seed(slots: 1, users: 500).first)

                let accepted = try await withThrowingTaskGroup(of: Int.self) { group in
                    for user in 1...500 {
                        group.addTask {
                            try await stack.book(
                                requestID: "reply-\(user)", userID: Int64(user), slotID: slot, ingress: user % 2
                            ).status
                        }
                    }
                    return try await group.reduce(into: [Int]()) { $0.append($1) }
                }
                #expect(accepted.allSatisfy { $0 == 202 })
                // The notifiers start once the 500 requests are accepted: until then this test process,
                // which hosts the fake API too, is too busy sending them to record arrivals faithfully.
                try stack.startNotifier(name: "notifier-a", botAPI: api.url)
                try stack.startNotifier(name: "notifier-b", botAPI: api.url)

                // Every reply delivered (500 at 30/s: about 17 s). The test process only polls the
                // database meanwhile, so the fake API's arrival times are not blurred by its own load.
                let deadline = ContinuousClock.now + .seconds(180)
                while try await stack.postgres.query(
                    """
                    SELECT (SELECT count(*) FROM inbox) < 500
                        OR EXISTS (SELECT 1 FROM outbox WHERE status IN ('pending', 'sending'))
                    """
                ).single().decode(Bool.self, at: 0) {
                    guard ContinuousClock.now < deadline else { break }
                    try await Task.sleep(for: .milliseconds(200))
                }
                try await Task.sleep(for: .seconds(1))

                // The outcomes, as the API reports them, 20 requests at a time.
                var outcomes: [Int64: String] = [:]
                for start in stride(from: 1, through: 500, by: 20) {
                    try await withThrowingTaskGroup(of: (Int64, String).self) { group in
                        for user in start..<min(start + 20, 501) {
                            group.addTask {
                                (Int64(user), try await stack.outcome(of: "reply-\(user)", ingress: user % 2))
                            }
                        }
                        for try await (user, outcome) in group { outcomes[user] = outcome }
                    }
                }
                let winners = outcomes.filter { $0.value == "booked" }.map(\.key)
                #expect(winners.count == 1 && outcomes.values.filter { $0 == "slot_taken" }.count == 499)
                let booked = try await stack.postgres.query(
                    "SELECT user_id FROM interviews WHERE time_slot_id = \(slot) AND status = 'active'"
                ).map { try $0.decode(Int64.self, at: 0) }
                #expect(booked == winners, "the API's winner is the database's")

                let calls = api.calls
                #expect(calls.count == 500, "one message per outcome, \(calls.count) calls")
                #expect(
                    calls.allSatisfy { $0.method == "sendMessage" && $0.token == FakeBotAPI.token && $0.status == 200 })
                let byChat = Dictionary(grouping: calls, by: { $0.chatID ?? 0 })
                #expect(Set(byChat.keys) == Set(1...500), "each user's own chat (chat id = user id)")
                for (chat, received) in byChat {
                    #expect(received.count == 1, "chat \(chat) got \(received.count) messages")
                    let expected = winners.contains(chat) ? Self.booked : Self.taken
                    #expect(received.first?.text == expected, "chat \(chat): \(received.first?.text ?? "-")")
                }

                let rows = try await stack.postgres.query(
                    "SELECT chat_id, status, telegram_message_id, claimed_at FROM outbox"
                ).map { try $0.decode(Int64.self, String.self, Int64?.self, Date?.self) }
                #expect(rows.count == 500 && rows.allSatisfy { $0.1 == "sent" })
                for (chat, _, messageID, _) in rows {
                    #expect(messageID != nil && messageID == byChat[chat]?.first?.messageID, "chat \(chat)")
                }
                // Telegram's ~30 messages/s per bot, for both notifiers together, exactly on the claims
                // (the database's clock; a call is made only after its claim commits). Arrival stamps
                // in this busy test process would only blur it. Unlimited, two notifiers would
                // deliver the 500 in a second or two.
                #expect(busiestSecond(rows.compactMap(\.3)) <= 30, "claims: \(busiestSecond(rows.compactMap(\.3)))")

                let statuses = await stack.shutdown()
                #expect(statuses.values.allSatisfy { $0 == 0 }, "every process exits 0 on SIGTERM: \(statuses)")
            }
        }

        /// The largest number of `times` within any one second.
        private func busiestSecond(_ times: [Date]) -> Int {
            let sorted = times.sorted()
            var (best, start) = (0, 0)
            for end in sorted.indices {
                while sorted[end].timeIntervalSince(sorted[start]) >= 1 { start += 1 }
                best = max(best, end - start + 1)
            }
            return best
        }
    }
}
