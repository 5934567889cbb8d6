import Foundation
import LeaseholdTesting
import Testing

/// The double booking of incident 000 (Runbooks/architecture.md), at high traffic, through separate ingress and worker processes.
extension SystemTests {
    @Suite("Booking races through real processes")
    struct BookingRaceTests {
        /// In both key layouts: one stream per source, and three shards per source (every role
        /// reading and writing `lh:{bookings:N}:…`).
        @Test(arguments: [nil, 3] as [Int?])
        func fiveHundredConcurrentBookingsOfOneSlotBookItExactlyOnce(shards: Int?) async throws {
            let stack = try await ProcessStack.start(ingress: 2, workers: 3, shards: shards)
            let slot = try #require(try await stack.seed(slots: 1, users: 500).first)
            // Make the race as hard as it gets: hold the slot's row lock while the requests arrive,
            // so every worker slot (3 × 16) has a booking transaction in flight for this one slot,
            // then let them all go at once. Only the slot lock makes them queue; without it they
            // would not wait here at all (and this test fails on the wait below).
            let lock = try await SlotLock(stack, slot: slot)
            let accepted = try await withThrowingTaskGroup(of: Int.self) { group in
                for user in 1...500 {
                    group.addTask {
                        try await stack.book(
                            requestID: "race-\(user)", userID: Int64(user), slotID: slot, ingress: user % 2
                        ).status
                    }
                }
                return try await group.reduce(into: [Int]()) { $0.append($1) }
            }
            #expect(accepted.allSatisfy { $0 == 202 })
            try await waitUntil { try await SystemTests.blockedWorkerTransactions(stack) >= 40 }
            try await lock.release()

            let outcomes = try await withThrowingTaskGroup(of: (Int, String).self) { group in
                for user in 1...500 {
                    group.addTask { (user, try await stack.outcome(of: "race-\(user)", ingress: (user + 1) % 2)) }
                }
                return try await group.reduce(into: [Int: String]()) { $0[$1.0] = $1.1 }
            }

            #expect(outcomes.count == 500, "every request has an outcome")
            let counts = Dictionary(grouping: outcomes.values, by: { $0 }).mapValues(\.count)
            #expect(counts["booked"] == 1, "\(counts)")
            #expect(counts["slot_taken"] == 499, "\(counts)")
            let active = try await stack.postgres.query(
                "SELECT count(*) FROM interviews WHERE time_slot_id = \(slot) AND status = 'active'"
            ).single().decode(Int64.self, at: 0)
            #expect(active == 1)
            let inbox = try await stack.postgres.query("SELECT count(*) FROM inbox").single().decode(Int64.self, at: 0)
            #expect(inbox == 500)
            #expect(try await stack.pendingCount("bookings") == 0, "every entry acknowledged")
            for stream in stack.keys.streams("bookings") {
                // Sharded, the 500 request IDs spread over every stream: each carried part of the race.
                #expect(try await stack.redis.send("XLEN", stream).int ?? 0 > 0, "\(stream) got entries")
            }
            if shards != nil {
                #expect(
                    try await stack.redis.send("EXISTS", "\(stack.prefix)stream:bookings").int == 0, "no one-node key")
            }
            if let duplicates = ProcessStack.duplicateKeyErrorsInPostgresLog() {
                #expect(
                    duplicates.isEmpty,
                    "duplicate key errors in the PostgreSQL log:\n\(duplicates.joined(separator: "\n"))")
            } else {
                #expect(!IntegrationEnvironment.isRequired, "POSTGRES_LOG must point at the server log in CI")
            }
            let statuses = await stack.shutdown()
            #expect(statuses.values.allSatisfy { $0 == 0 }, "every process exits 0 on SIGTERM: \(statuses)")
        }

        @Test func fiveThousandBookingsOverFiveHundredSlotsFromFiftyClients() async throws {
            let stack = try await ProcessStack.start(ingress: 2, workers: 3)
            let slots = try await stack.seed(slots: 500, users: 5_000)
            #expect(slots.count == 500)

            let next = SharedCounter()
            let accepted = SharedCounter()
            let outcomes = try await withThrowingTaskGroup(of: [String: String].self) { group in
                for client in 0..<50 {
                    group.addTask {
                        var mine: [String: String] = [:]
                        while true {
                            let index = next.next()
                            guard index < 5_000 else { break }
                            let requestID = "bulk-\(index)"
                            let response = try await stack.book(
                                requestID: requestID, userID: Int64(index + 1), slotID: slots[index % 500],
                                ingress: client % 2)
                            guard response.status == 202 else {
                                Issue.record("request \(index) answered \(response.status): \(response.body)")
                                continue
                            }
                            accepted.add()
                            mine[requestID] = try await stack.outcome(of: requestID, ingress: client % 2)
                        }
                        return mine
                    }
                }
                return try await group.reduce(into: [String: String]()) { $0.merge($1) { first, _ in first } }
            }

            let acceptedCount = accepted.value
            #expect(acceptedCount == 5_000)
            #expect(outcomes.count == acceptedCount, "each accepted request has one outcome")
            let counts = Dictionary(grouping: outcomes.values, by: { $0 }).mapValues(\.count)
            #expect(counts["booked"] == 500, "\(counts)")
            #expect(counts["slot_taken"] == 4_500, "\(counts)")
            let perSlot = try await stack.postgres.query(
                """
                SELECT count(*) FILTER (WHERE n = 1), count(*) FILTER (WHERE n <> 1)
                FROM (SELECT t.id, count(i.id) AS n FROM time_slots t
                      LEFT JOIN interviews i ON i.time_slot_id = t.id AND i.status = 'active' GROUP BY t.id) s
                """
            ).single()
            let (exactlyOnce, otherwise) = try perSlot.decode(Int64.self, Int64.self)
            #expect(exactlyOnce == 500 && otherwise == 0, "every slot booked exactly once")
            let inbox = try await stack.postgres.query("SELECT count(*) FROM inbox").single().decode(Int64.self, at: 0)
            #expect(inbox == Int64(acceptedCount), "inbox count equals accepted requests")
            await stack.shutdown()
        }
    }
}
