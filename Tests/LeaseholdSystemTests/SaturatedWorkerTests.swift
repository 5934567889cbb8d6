import Foundation
import LeaseholdPostgres
import LeaseholdQueue
import LeaseholdRedis
import LeaseholdTesting
import LeaseholdWire
import Testing

/// A worker whose every slot is busy: it holds no more entries than slots, over all its streams,
/// and SIGTERM still drains on time, spending no attempt on the entries it gives up.
extension SystemTests {
    @Suite("Saturated worker")
    struct SaturatedWorkerTests {
        /// Booking entries written straight to `source`'s stream (the worker decodes by kind, not
        /// by stream), one per slot, user i booking slot i.
        static func enqueueBookings(
            _ stack: ProcessStack, source: String, slots: ArraySlice<Int64>, firstUser: Int64
        ) async throws {
            let producer = StreamProducer(keys: RedisKeys(prefix: stack.prefix), highWaterMark: 0)
            for (offset, slot) in slots.enumerated() {
                let user = firstUser + Int64(offset)
                let request = BookingRequest(action: .book, userID: user, slotID: slot, requestID: "\(source)-\(user)")
                let entry = StreamEntry(
                    stream: stack.stream(source), key: "api:\(source)-\(user)", kind: BookingRequest.kind,
                    payload: Array(try JSONEncoder().encode(request)))
                _ = try await producer.enqueue(entry, via: stack.redis)
            }
        }

        /// Entries delivered to `consumer` and not acknowledged, over the three streams.
        static func pending(_ stack: ProcessStack, consumer: String) async throws -> Int {
            var total = 0
            for source in ["telegram", "yookassa", "bookings"] {
                let reply = try await stack.redis.send(
                    "XPENDING", stack.stream(source), "workers", "-", "+", 1_000, consumer)
                total += reply.array?.count ?? 0
            }
            return total
        }

        @Test func aWorkerNeverHoldsMoreEntriesThanSlotsOverAllItsStreams() async throws {
            let stack = try await ProcessStack.start(ingress: 1, workers: 0)
            let slots = try await stack.seed(slots: 12, users: 12)
            let locks = try await SystemTests.slotLocks(stack, slots)
            try await Self.enqueueBookings(stack, source: "telegram", slots: slots[0..<4], firstUser: 1)
            try await Self.enqueueBookings(stack, source: "yookassa", slots: slots[4..<8], firstUser: 5)
            try await Self.enqueueBookings(stack, source: "bookings", slots: slots[8..<12], firstUser: 9)

            let worker = try stack.startWorker(
                name: "worker-0",
                environment: ["LEASEHOLD_WORKER_CONCURRENCY": "4", "LEASEHOLD_LOCK_TIMEOUT_MS": "60000"])
            try await waitUntil { try await SystemTests.blockedWorkerTransactions(stack) == 4 }
            // Every slot is blocked on a row lock; for a while, the worker holds exactly four entries.
            var most = 0
            for _ in 0..<20 {
                most = max(most, try await Self.pending(stack, consumer: "worker-0"))
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(most == 4, "entries pending for the worker with 4 slots: \(most)")
            #expect(worker.isRunning)

            for lock in locks { try await lock.release() }
            try await waitUntil {
                let interviews = try await stack.postgres.query("SELECT count(*) FROM interviews").single()
                return try interviews.decode(Int64.self, at: 0) == 12
            }
            // The acknowledgement follows each COMMIT: wait for the last one too.
            try await waitUntil { try await Self.pending(stack, consumer: "worker-0") == 0 }
            #expect(try await Self.pending(stack, consumer: "worker-0") == 0)
            await stack.shutdown()
        }

        @Test func readsRotateOverTheStreamsWithinOneBudget() async throws {
            let stack = try await ProcessStack.start(ingress: 1, workers: 0)
            let slots = try await stack.seed(slots: 15, users: 15)
            for (index, source) in ["telegram", "yookassa", "bookings"].enumerated() {
                try await Self.enqueueBookings(
                    stack, source: source, slots: slots[(index * 5)..<(index * 5 + 5)], firstUser: Int64(index * 5 + 1))
            }
            let streams = ["telegram", "yookassa", "bookings"].map(stack.stream)
            let consumer = StreamConsumer(streams: streams, consumer: "reader")
            var sources: [[String]] = []
            for rotation in 0..<3 {
                try await consumer.ensureGroups(via: stack.redis)
                let batch = try await consumer.read(
                    count: 2, block: .milliseconds(100), first: rotation, via: stack.redis)
                #expect(batch.count == 2)
                sources.append(batch.entries.map(\.stream))
            }
            // Each read starts with another stream; the budget is never exceeded.
            #expect(sources.map(\.first) == streams)
            #expect(try await Self.pending(stack, consumer: "reader") == 6)
            await stack.shutdown()
        }

        @Test func sigtermWithEverySlotBlockedDrainsOnTimeAndSpendsNoAttempt() async throws {
            let stack = try await ProcessStack.start(ingress: 1, workers: 0)
            let slots = try await stack.seed(slots: 2, users: 2)
            let locks = try await SystemTests.slotLocks(stack, slots)
            try await Self.enqueueBookings(stack, source: "bookings", slots: slots[0..<2], firstUser: 1)
            let worker = try stack.startWorker(
                name: "worker-0",
                environment: [
                    "LEASEHOLD_WORKER_CONCURRENCY": "2", "LEASEHOLD_LOCK_TIMEOUT_MS": "60000",
                    "LEASEHOLD_DRAIN_TIMEOUT_MS": "1000",
                ])
            try await waitUntil { try await SystemTests.blockedWorkerTransactions(stack) == 2 }

            let signalled = ContinuousClock.now
            worker.send(SIGTERM)
            #expect(await worker.waitForExit(timeout: .seconds(3)), "drain timeout 1 s + 2 s")
            let exited = ContinuousClock.now - signalled
            #expect(worker.exitStatus == 0, "\(worker.output)")
            for lock in locks { try await lock.release() }

            // Cancelled, rolled back, left pending under the worker: no attempt spent.
            #expect(try await Self.pending(stack, consumer: "worker-0") == 2)
            let retries = try await stack.redis.send(
                "ZCARD",
                RedisKeys(prefix: stack.prefix).retrySchedule(for: RedisKeys(prefix: stack.prefix).stream("bookings")))
            #expect(retries.int == 0, "nothing in the retry schedule")
            let deadLetters = try await stack.postgres.query("SELECT count(*) FROM dead_letters").single()
                .decode(Int64.self, at: 0)
            #expect(deadLetters == 0)
            let inbox = try await stack.postgres.query("SELECT count(*) FROM inbox").single().decode(Int64.self, at: 0)
            #expect(inbox == 0, "rolled back")
            let entries = try await stack.redis.send("XRANGE", stack.stream("bookings"), "-", "+").array ?? []
            let attempts = try entries.map { try StreamEntry(stream: stack.stream("bookings"), reply: $0).attempt }
            #expect(attempts == [1, 1], "attempt counters unchanged")
            for key in ["api:bookings-1", "api:bookings-2"] {
                #expect(try await stack.redis.send("EXISTS", "\(stack.prefix)lease:\(key)").int == 0, "lease released")
            }
            let errors = worker.output.split(separator: "\n").filter { $0.contains(" error ") || $0.contains("retry") }
            #expect(errors.isEmpty, "no error logged, no retry: \(errors)")
            #expect(exited < .seconds(3))
            await stack.shutdown()
        }
    }
}
