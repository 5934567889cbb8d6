import Foundation
import LeaseholdTesting
import Testing

/// A worker whose `POSTGRES_URL` says `sslmode=require`, reaching PostgreSQL through a TLS
/// terminator (stunnel, which sends TLS records of up to 16 kB, where PostgreSQL's own stay
/// within 8 kB): its reactor reads every reply over TLS, and the bookings come out as they do in
/// plaintext.
extension SystemTests {
    @Suite("Bookings with the worker's database connections over TLS", .enabled(if: PostgresTLSProxy.isAvailable))
    struct TLSBookingTests {
        @Test func bookingsThroughAWorkerWhoseDatabaseURLRequiresTLS() async throws {
            let stack = try await ProcessStack.start(ingress: 1, workers: 0)
            guard var components = URLComponents(string: stack.database.url), let port = components.port else {
                await stack.shutdown()
                throw TestSetupError("the stack's database URL has no port: \(stack.database.url)")
            }
            let proxy: PostgresTLSProxy
            do {
                proxy = try await PostgresTLSProxy.start(targetPort: port)
            } catch {
                await stack.shutdown()
                throw error
            }
            components.port = proxy.port
            components.queryItems =
                (components.queryItems ?? []).filter { $0.name != "sslmode" } + [
                    URLQueryItem(name: "sslmode", value: "require")
                ]
            let tlsURL = try #require(components.string)
            try stack.startWorker(
                name: "worker-tls", environment: ["POSTGRES_URL": tlsURL, "LEASEHOLD_WORKER_CONCURRENCY": "8"])
            try await waitUntil {
                let groups = try? await stack.redis.send("XINFO", "GROUPS", stack.stream("bookings"))
                return groups?.array?.isEmpty == false
            }

            // 200 slots, each booked by one user, and 100 second tries at slots already asked for
            // by another user: 200 booked and 100 refused as taken, whichever comes first.
            let total = 200
            let slots = try await stack.seed(slots: total, users: total + 100)
            #expect(slots.count == total)
            let requests: [(id: String, user: Int64, slot: Int64)] =
                (0..<total).map { ("tls-\($0)", Int64($0 + 1), slots[$0]) }
                + (0..<100).map { ("tls-again-\($0)", Int64(total + $0 + 1), slots[$0 * 2]) }
            let accepted = try await withThrowingTaskGroup(of: Int.self) { group in
                var statuses: [Int] = []
                for (index, request) in requests.enumerated() {
                    if index >= 16, let status = try await group.next() { statuses.append(status) }
                    group.addTask {
                        try await stack.book(requestID: request.id, userID: request.user, slotID: request.slot).status
                    }
                }
                for try await status in group { statuses.append(status) }
                return statuses
            }
            #expect(accepted.count == requests.count && accepted.allSatisfy { $0 == 202 }, "\(accepted)")
            let outcomes = try await withThrowingTaskGroup(of: String.self) { group in
                for request in requests { group.addTask { try await stack.outcome(of: request.id) } }
                return try await group.reduce(into: [String: Int]()) { $0[$1, default: 0] += 1 }
            }
            #expect(outcomes["booked"] == total, "\(outcomes)")
            #expect(outcomes["slot_taken"] == 100, "\(outcomes)")
            let active = try await stack.postgres.query("SELECT count(*) FROM interviews WHERE status = 'active'")
                .single().decode(Int64.self, at: 0)
            #expect(active == Int64(total))
            #expect(try await stack.pendingCount("bookings") == 0, "every entry acknowledged")
            #expect(proxy.log.contains("accepted connection"), "the worker's connections went through stunnel")

            let statuses = await stack.shutdown()
            await proxy.stop()
            #expect(statuses["worker-tls"] == 0, "the worker exits 0 on SIGTERM: \(statuses)")
        }
    }
}
