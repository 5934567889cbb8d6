import Foundation
import LeaseholdPostgres
import LeaseholdQueue
import LeaseholdRedis
import LeaseholdTesting
import LeaseholdWire
import Testing

/// The idempotency key's contract, as payment APIs have it: the same request under the same key is
/// a retry (one effect, the first outcome, whole); a different request under a used key is refused
/// with `request_id_reused` and changes nothing.
extension SystemTests {
    @Suite("Request ID reuse and duplicate outcomes")
    struct RequestIDReuseTests {
        static let bearer = ("Authorization", "Bearer \(ProcessStack.apiToken)")

        func count(_ sql: String, _ stack: ProcessStack) async throws -> Int64 {
            try await stack.postgres.query(PostgresQuery(unsafeSQL: sql)).single().decode(Int64.self, at: 0)
        }

        @Test func aReusedRequestIDWithAnotherBodyIsRefusedAndChangesNothing() async throws {
            let stack = try await ProcessStack.start(ingress: 1, workers: 1)
            let slots = try await stack.seed(slots: 2, users: 2)

            #expect(try await stack.book(requestID: "reuse-1", userID: 1, slotID: slots[0]).status == 202)
            #expect(try await stack.outcome(of: "reuse-1") == "booked")

            // While the first request is remembered in Redis, ingress refuses at once: 409, nothing enqueued.
            let refused = try await stack.book(requestID: "reuse-1", userID: 1, slotID: slots[1])
            #expect(refused.status == 409, "got \(refused.status) \(refused.body)")
            #expect(refused.body.contains("request_id_reused"))
            let otherUser = try await stack.book(requestID: "reuse-1", userID: 2, slotID: slots[0])
            #expect(otherUser.status == 409)
            #expect(try await stack.streamLength("bookings") == 1)
            // The same request again is a retry, not a reuse.
            #expect(try await stack.book(requestID: "reuse-1", userID: 1, slotID: slots[0]).status == 202)

            // Every entry handled, the retry's too (it republishes the outcome), before Redis forgets.
            try await waitUntil { try await stack.unhandledCount("bookings") == 0 }
            #expect(try await stack.outcome(of: "reuse-1") == "booked")

            // Once Redis has forgotten it (the result TTL passed), the inbox still knows: the worker
            // refuses the different request and GET answers 409.
            _ = try await stack.redis.send(
                "DEL", RedisKeys(prefix: stack.prefix).result("reuse-1"),
                RedisKeys(prefix: stack.prefix).requestDigest("reuse-1"))
            #expect(try await stack.book(requestID: "reuse-1", userID: 1, slotID: slots[1]).status == 202)
            #expect(try await stack.outcome(of: "reuse-1") == "request_id_reused")
            let lookup = try await stack.request(.GET, "/v1/bookings/reuse-1", headers: [Self.bearer])
            #expect(lookup.status == 409)

            try await waitUntil { try await stack.pendingCount("bookings") == 0 }
            #expect(try await count("SELECT count(*) FROM interviews", stack) == 1)
            #expect(try await count("SELECT count(*) FROM interviews WHERE time_slot_id = \(slots[1])", stack) == 0)
            let recorded = try await stack.postgres.query(
                "SELECT outcome FROM inbox WHERE message_key = 'api:reuse-1'"
            ).single().decode(String.self, at: 0)
            #expect(recorded == "booked", "the first request's outcome stands")
            await stack.shutdown()
        }

        /// A duplicate delivery (the worker died after COMMIT, before XACK) republishes the outcome
        /// the first delivery recorded, interview included, over whatever the result key holds.
        @Test func aDuplicateDeliveryRepublishesTheWholeOutcome() async throws {
            let stack = try await ProcessStack.start(ingress: 1, workers: 1)
            let slots = try await stack.seed(slots: 1, users: 1)
            #expect(try await stack.book(requestID: "whole-1", userID: 1, slotID: slots[0]).status == 202)
            #expect(try await stack.outcome(of: "whole-1") == "booked")
            let first = try await stack.request(.GET, "/v1/bookings/whole-1", headers: [Self.bearer]).json
            let interviewID = try #require(first?["interview_id"] as? Int, "the first outcome names the interview")

            // The result expired; the same entry arrives again (a redelivery).
            let keys = RedisKeys(prefix: stack.prefix)
            _ = try await stack.redis.send("DEL", keys.result("whole-1"))
            let request = BookingRequest(action: .book, userID: 1, slotID: slots[0], requestID: "whole-1")
            let entry = StreamEntry(
                stream: stack.stream("bookings"), key: "api:whole-1", kind: BookingRequest.kind,
                payload: Array(try JSONEncoder().encode(request)))
            _ = try await StreamProducer(keys: keys, highWaterMark: 0).enqueue(entry, via: stack.redis)

            try await waitUntil {
                let stored = try await stack.redis.send("GET", keys.result("whole-1"))
                return stored.bytes != nil
            }
            let again = try await stack.request(.GET, "/v1/bookings/whole-1", headers: [Self.bearer]).json
            #expect(again?["status"] as? String == "booked")
            #expect(again?["interview_id"] as? Int == interviewID, "the duplicate keeps the interview: \(again ?? [:])")
            #expect(try await count("SELECT count(*) FROM interviews", stack) == 1)
            await stack.shutdown()
        }
    }
}
