import Foundation
import LeaseholdTesting
import Testing

extension SystemTests {
    /// `leasehold loadtest` against a real multi-process stack: its JSON, and its exit status when
    /// an invariant does not hold.
    @Suite("leasehold loadtest")
    struct LoadTestCommandTests {
        private func loadtest(_ stack: ProcessStack, _ extra: [String] = []) async throws -> (Int32, [String: Any]) {
            let result = try await LeaseholdExecutable.run(
                ["loadtest", "--url", stack.ingressURL(0), "--url", stack.ingressURL(1), "--slots", "20",
                 "--per-slot", "10", "--concurrency", "16", "--json"] + extra,
                in: stack.directory, environment: stack.environment, timeout: .seconds(300))
            let json = String(result.output.drop { $0 != "{" })
            let report = try #require(
                try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any], "\(result.output)")
            return (result.status, report)
        }

        @Test func aHealthyRunReportsEveryInvariantAndPgbenchInJSON() async throws {
            let stack = try await ProcessStack.start(ingress: 2, workers: 2)
            let (status, report) = try await loadtest(stack)
            #expect(status == 0)
            #expect(report["passed"] as? Bool == true)
            #expect(report["accepted"] as? Int == 200)
            #expect(report["completed"] as? Int == 200)
            #expect((report["outcomes"] as? [String: Int]) == ["booked": 20, "slot_taken": 180])
            let invariants = report["invariants"] as? [[String: Any]] ?? []
            #expect(invariants.count == 5)
            #expect(invariants.allSatisfy { $0["passed"] as? Bool == true })
            let latency = report["endToEndLatency"] as? [String: Any]
            #expect((latency?["count"] as? Int) == 200)
            #expect((latency?["p99"] as? Double ?? 0) >= (latency?["p50"] as? Double ?? 0))
            let pgbench = report["pgbench"] as? [String: Any]
            #expect((pgbench?["tps"] as? Double ?? 0) > 0, "pgbench ran the same transaction in the same run")
            #expect((report["ratioToPgbench"] as? Double ?? 0) > 0)
            await stack.shutdown()
        }

        @Test func aDoubleBookingMakesTheRunFailWithANonZeroExit() async throws {
            let stack = try await ProcessStack.start(ingress: 2, workers: 2)
            // Break the database the way the incident did: no unique index, two active interviews
            // for one slot.
            let slot = try #require(try await stack.seed(slots: 1, users: 2).first)
            try await stack.postgres.query("DROP INDEX interviews_one_active_per_slot")
            for user in [1, 2] {
                try await stack.postgres.query(
                    "INSERT INTO interviews (user_id, time_slot_id, message_key) VALUES (\(Int64(user)), \(slot), \("manual-\(user)"))")
            }
            let (status, report) = try await loadtest(stack, ["--no-pgbench"])
            #expect(status == 1)
            #expect(report["passed"] as? Bool == false)
            let failed = (report["invariants"] as? [[String: Any]] ?? []).filter { $0["passed"] as? Bool == false }
            #expect(failed.map { $0["name"] as? String } == ["no slot has two active interviews"])
            await stack.shutdown()
        }
    }
}
