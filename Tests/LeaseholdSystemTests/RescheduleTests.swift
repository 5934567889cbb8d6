import Foundation
import LeaseholdPostgres
import LeaseholdTesting
import Testing

/// Lock order (user, then slots ascending, then interview) makes reverse reschedules deadlock-free.
extension SystemTests {
    @Suite("Reschedules and cancels")
    struct RescheduleTests {
        /// Books user i into slot i through the API and returns the interview ids by user.
        private func bookEveryone(_ stack: ProcessStack, slots: [Int64]) async throws -> [Int64: Int64] {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for (index, slot) in slots.enumerated() {
                    group.addTask {
                        _ = try await stack.book(requestID: "initial-\(index)", userID: Int64(index + 1), slotID: slot)
                        #expect(try await stack.outcome(of: "initial-\(index)") == "booked")
                    }
                }
                try await group.waitForAll()
            }
            var interviews: [Int64: Int64] = [:]
            for row in try await stack.postgres.query("SELECT user_id, id FROM interviews WHERE status = 'active'") {
                let (user, interview) = try row.decode(Int64.self, Int64.self)
                interviews[user] = interview
            }
            return interviews
        }

        @Test func oneHundredConcurrentReverseReschedulesFinishConsistentlyWithoutDeadlock() async throws {
            let stack = try await ProcessStack.start(ingress: 2, workers: 3)
            // 100 pairs of booked slots (A, B), and one free slot per pair (C).
            let slots = try await stack.seed(slots: 300, users: 200)
            let booked = Array(slots.prefix(200))
            let free = Array(slots.suffix(100))
            let interviews = try await bookEveryone(stack, slots: booked)
            #expect(interviews.count == 200)
            let deadlocksBefore = ProcessStack.postgresLogLines(containing: "deadlock detected")?.count

            // Pair p: user a holds A, user b holds B. At once: a asks A→B, b asks B→A, and a third
            // request moves b to the free slot C — so some reverse moves can really happen.
            let requests = (0..<100).flatMap { pair -> [(Int64, Int64, String)] in
                let a = Int64(2 * pair + 1), b = Int64(2 * pair + 2)
                let slotA = booked[2 * pair], slotB = booked[2 * pair + 1], slotC = free[pair]
                return [
                    (a, 10_000 + a, "reschedule:\(interviews[a]!):\(slotB)"),
                    (b, 10_000 + b, "reschedule:\(interviews[b]!):\(slotA)"),
                    (b, 20_000 + b, "reschedule:\(interviews[b]!):\(slotC)"),
                ]
            }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for (index, (user, update, data)) in requests.enumerated() {
                    group.addTask {
                        let response = try await stack.telegramCallback(
                            updateID: update, userID: user, data: data, ingress: index % 2)
                        #expect(response.status == 200)
                    }
                }
                try await group.waitForAll()
            }
            // Every reschedule gets its outcome (in the inbox) — nothing hangs.
            try await waitUntil(timeout: .seconds(120)) {
                try await stack.postgres.query("SELECT count(*) FROM inbox WHERE message_key LIKE 'tg:%'")
                    .single().decode(Int64.self, at: 0) == 300
            }
            let outcomes = try await stack.postgres.query(
                "SELECT outcome, count(*) FROM inbox WHERE message_key LIKE 'tg:%' GROUP BY outcome")
            var counts: [String: Int64] = [:]
            for row in outcomes {
                let (outcome, count) = try row.decode(String.self, Int64.self)
                counts[outcome] = count
            }
            #expect(Set(counts.keys).isSubset(of: ["rescheduled", "slot_taken", "rejected"]), "\(counts)")
            #expect((counts["rescheduled"] ?? 0) >= 100, "every pair moves at least one interview: \(counts)")

            // Consistency: every user still has exactly one active interview, no slot has two.
            let perUser = try await stack.postgres.query(
                "SELECT count(*) FROM (SELECT user_id FROM interviews WHERE status = 'active' GROUP BY user_id HAVING count(*) <> 1) x"
            )
            #expect(try perUser.single().decode(Int64.self, at: 0) == 0)
            let active = try await stack.postgres.query("SELECT count(*) FROM interviews WHERE status = 'active'")
            #expect(try active.single().decode(Int64.self, at: 0) == 200)
            let perSlot = try await stack.postgres.query(
                "SELECT count(*) FROM (SELECT time_slot_id FROM interviews WHERE status = 'active' GROUP BY time_slot_id HAVING count(*) > 1) x"
            )
            #expect(try perSlot.single().decode(Int64.self, at: 0) == 0)
            if let deadlocksBefore,
                let deadlocksAfter = ProcessStack.postgresLogLines(containing: "deadlock detected")?.count
            {
                #expect(deadlocksAfter == deadlocksBefore, "fixed lock order: no deadlock was ever detected")
            }
            await stack.shutdown()
        }

        @Test func cancelFreesTheSlotForTheNextBooking() async throws {
            let stack = try await ProcessStack.start(ingress: 1, workers: 1)
            let slots = try await stack.seed(slots: 1, users: 3)
            let interviews = try await bookEveryone(stack, slots: slots)
            let first = try #require(interviews[1])
            // Someone else's interview cannot be cancelled by user 2.
            _ = try await stack.telegramCallback(updateID: 1, userID: 2, data: "cancel:\(first)")
            _ = try await stack.telegramCallback(updateID: 2, userID: 1, data: "cancel:\(first)")
            try await waitUntil {
                try await stack.postgres.query("SELECT count(*) FROM inbox WHERE message_key IN ('tg:1', 'tg:2')")
                    .single().decode(Int64.self, at: 0) == 2
            }
            let outcomes = try await stack.postgres.query(
                "SELECT message_key, outcome FROM inbox WHERE message_key IN ('tg:1', 'tg:2') ORDER BY message_key")
            #expect(try outcomes.rows.map { try $0.decode(String.self, at: 1) } == ["rejected", "cancelled"])
            _ = try await stack.book(requestID: "after-cancel", userID: 3, slotID: slots[0])
            #expect(try await stack.outcome(of: "after-cancel") == "booked")
            await stack.shutdown()
        }
    }
}
