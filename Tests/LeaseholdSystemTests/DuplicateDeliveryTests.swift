import Foundation
import LeaseholdRedis
import LeaseholdTesting
import Testing

/// Guarantee 2 (Runbooks/architecture.md): every accepted message changes the database at most once.
extension SystemTests {
    @Suite("Duplicate deliveries")
    struct DuplicateDeliveryTests {
        @Test func theSameRequestSentTwiceChangesTheDatabaseOnce() async throws {
            let stack = try await ProcessStack.start(ingress: 2, workers: 2)
            let slots = try await stack.seed(slots: 2, users: 2)
            // The API client retries (two XADDs with the key api:dup-1), to both ingress replicas.
            #expect(try await stack.book(requestID: "dup-1", userID: 1, slotID: slots[0], ingress: 0).status == 202)
            #expect(try await stack.book(requestID: "dup-1", userID: 1, slotID: slots[0], ingress: 1).status == 202)
            // Telegram redelivers the same update.
            #expect(try await stack.telegramCallback(updateID: 42, userID: 2, data: "book:\(slots[1])").status == 200)
            #expect(try await stack.telegramCallback(updateID: 42, userID: 2, data: "book:\(slots[1])").status == 200)
            #expect(try await stack.streamLength("bookings") == 2)
            #expect(try await stack.streamLength("telegram") == 2)

            #expect(try await stack.outcome(of: "dup-1") == "booked")
            try await waitUntil {
                let telegram = try await stack.redis.send("XINFO", "GROUPS", stack.stream("telegram")).array?.first?
                    .array
                let read = telegram.flatMap { Self.field("entries-read", in: $0) }
                let pendingBookings = try await stack.pendingCount("bookings")
                let pendingTelegram = try await stack.pendingCount("telegram")
                return read == 2 && pendingBookings == 0 && pendingTelegram == 0
            }
            let interviews = try await stack.postgres.query("SELECT count(*) FROM interviews").single().decode(
                Int64.self, at: 0)
            #expect(interviews == 2, "one interview per message key, not per delivery")
            let inbox = try await stack.postgres.query("SELECT count(*) FROM inbox").single().decode(Int64.self, at: 0)
            #expect(inbox == 2)
            let replies = try await stack.postgres.query("SELECT count(*) FROM outbox").single().decode(
                Int64.self, at: 0)
            #expect(replies == 2, "one bot reply per message key")
            #expect(try await stack.outcome(of: "dup-1") == "booked", "the duplicate republishes the recorded outcome")
            await stack.shutdown()
        }

        static func field(_ name: String, in flat: [RedisValue]) -> Int64? {
            guard let index = flat.firstIndex(where: { $0.string == name }), index + 1 < flat.count else { return nil }
            return flat[index + 1].int
        }
    }
}
