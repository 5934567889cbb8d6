import Foundation
import LeaseholdPostgres
import LeaseholdQueue
import LeaseholdRedis
import LeaseholdTesting
import LeaseholdWire
import Logging
import Testing

@testable import LeaseholdWorker

/// The worker's Redis work is per read batch, not per entry: one script call takes a batch's
/// leases, one heartbeat renews every lease held, and a message kind is one handler type.
@Suite(
    "Worker: leases per batch, one heartbeat, handlers per kind", .serialized,
    .enabled(if: IntegrationEnvironment.isAvailable))
struct WorkerBatchingTests {
    static func bookingEntries(_ stack: ProcessStack, slots: [Int64]) throws -> [StreamEntry] {
        try slots.enumerated().map { index, slot in
            let request = BookingRequest(
                action: .book, userID: Int64(index + 1), slotID: slot, requestID: "b\(index)")
            return StreamEntry(
                stream: stack.stream("bookings"), key: "api:b\(index)", kind: BookingRequest.kind,
                payload: Array(try JSONEncoder().encode(request)))
        }
    }

    /// Writes `entries` and reads them back delivered to `consumer`.
    static func deliver(_ entries: [StreamEntry], stack: ProcessStack, consumer: String) async throws
        -> [StreamEntry]
    {
        let reader = StreamConsumer(streams: [stack.stream("bookings")], consumer: consumer)
        let producer = StreamProducer(keys: RedisKeys(prefix: stack.prefix), highWaterMark: 0)
        try await reader.ensureGroups(via: stack.redis)
        for entry in entries { _ = try await producer.enqueue(entry, via: stack.redis) }
        return try await reader.read(count: entries.count, block: .milliseconds(100), via: stack.redis).entries
    }

    @Test func aBatchsLeasesAreTakenInOneCallAndAHeldOneIsLeftPending() async throws {
        let stack = try await ProcessStack.start(ingress: 0, workers: 0)
        let keys = RedisKeys(prefix: stack.prefix)
        let slots = try await stack.seed(slots: 4, users: 4)
        let delivered = try await Self.deliver(
            try Self.bookingEntries(stack, slots: slots), stack: stack, consumer: "worker-a")
        #expect(delivered.count == 4)
        // Another worker holds the third entry's lease.
        try await stack.redis.send(
            "SET", keys.lease("api:b2", in: keys.stream("bookings")), "worker-b:other", "PX", 60_000)

        let processor = EntryProcessor(
            configuration: WorkerConfiguration(keys: keys, consumerName: "worker-a", leaseWait: .milliseconds(300)),
            deadLetterDatabase: stack.postgres, database: stack.workerPostgres, redis: stack.workerRedis,
            logger: Logger(label: "test.batch"))
        let claimed = await processor.lease(delivered)
        #expect(claimed.map(\.held) == [true, true, false, true])
        for item in claimed where item.held {
            let holder = try await stack.redis.send("GET", item.lease.key).string
            #expect(holder == item.lease.owner, "taken by this batch's call")
        }
        #expect(Set(claimed.map(\.lease.owner)).count == 4, "one owner per acquisition")

        await withTaskGroup(of: Void.self) { group in
            for item in claimed { group.addTask { await processor.process(item) } }
        }
        let booked = try await stack.postgres.query("SELECT count(*) FROM interviews").single().decode(
            Int64.self, at: 0)
        #expect(booked == 3)
        #expect(try await stack.pendingCount("bookings") == 1, "the entry whose lease was held stays pending")
        #expect(
            try await stack.redis.send("GET", keys.lease("api:b2", in: keys.stream("bookings"))).string
                == "worker-b:other")
        for index in [0, 1, 3] {
            #expect(
                try await stack.redis.send("EXISTS", keys.lease("api:b\(index)", in: keys.stream("bookings"))).int
                    == 0, "released")
            let published = try await stack.redis.send("GET", keys.result("b\(index)")).string ?? ""
            #expect(published.contains("\"status\":\"booked\""), "\(published)")
        }
        await stack.shutdown()
    }

    @Test func completionsAskedForInOneReactorTurnAreOneScriptCallAndEachGetsItsOwnAnswer() async throws {
        let stack = try await ProcessStack.start(ingress: 0, workers: 0)
        let keys = RedisKeys(prefix: stack.prefix)
        let count = 20
        let delivered = try await Self.deliver(
            try Self.bookingEntries(stack, slots: (1...count).map(Int64.init)), stack: stack, consumer: "worker-a")
        #expect(delivered.count == count)
        let terms = StreamConsumer.LeaseTerms(keys: keys, ownerPrefix: "worker-a:1:", ttl: .seconds(30))
        let leases = delivered.map(terms.lease(of:))
        #expect(try await Lease.acquire(leases, via: stack.redis) == Array(repeating: true, count: count))
        // Entry 3's lease passed to another worker meanwhile; entry 5's result key holds a list,
        // so its part of the script fails (WRONGTYPE) where it reads the key.
        try await stack.redis.send("SET", leases[3].key, "worker-b:other", "PX", 60_000)
        try await stack.redis.send("RPUSH", keys.result("b5", in: stack.stream("bookings")), "not a result")

        let completion = Completion(keys: keys)
        let batcher = CompletionBatcher(completion: completion, client: stack.workerRedis)
        let answers = await withTaskExecutorPreference(stack.workerRedis.reactor) {
            await withTaskGroup(of: (Int, String?).self) { group in
                for (index, entry) in delivered.enumerated() {
                    let item = completion.item(
                        entry, lease: leases[index], requestID: "b\(index)",
                        result: Array(#"{"status":"booked"}"#.utf8), resultTTL: .seconds(60), keepExisting: true)
                    group.addTask {
                        do {
                            try await batcher.complete(item)
                            return (index, nil)
                        } catch {
                            return (index, "\(error)")
                        }
                    }
                }
                return await group.reduce(into: [Int: String?]()) { $0[$1.0] = $1.1 }
            }
        }
        let (calls, completed) = await withTaskExecutorPreference(stack.workerRedis.reactor) {
            (batcher.calls, batcher.completed)
        }
        #expect(calls == 1, "twenty completions asked for in one turn: one script call")
        #expect(completed == count)

        for index in 0..<count {
            let answer = try #require(answers[index])
            let lease = try await stack.redis.send("GET", leases[index].key).string
            if index == 5 {
                #expect(answer?.contains("WRONGTYPE") == true, "its own error: \(answer ?? "none")")
                #expect(lease == leases[index].owner, "its lease stays until it expires")
            } else {
                #expect(answer == nil, "entry \(index): \(answer ?? "")")
                let published = try await stack.redis.send(
                    "GET", keys.result("b\(index)", in: stack.stream("bookings")))
                #expect(published.string == #"{"status":"booked"}"#, "entry \(index) published")
                #expect(lease == (index == 3 ? "worker-b:other" : nil), "entry \(index)'s lease")
            }
        }
        #expect(try await stack.pendingCount("bookings") == 0, "every entry acknowledged (XACK comes first)")
        await stack.shutdown()
    }

    @Test func oneScriptCallReadsWithinTheBudgetAndTakesTheLeasesOfWhatItDelivered() async throws {
        let stack = try await ProcessStack.start(ingress: 0, workers: 0)
        let keys = RedisKeys(prefix: stack.prefix)
        let streams = ["telegram", "yookassa", "bookings"].map(stack.stream)
        let consumer = StreamConsumer(streams: streams, consumer: "worker-a")
        let producer = StreamProducer(keys: keys, highWaterMark: 0)
        try await consumer.ensureGroups(via: stack.redis)
        for (index, stream) in streams.enumerated() {
            for item in 0..<2 {
                _ = try await producer.enqueue(
                    StreamEntry(stream: stream, key: "k\(index)-\(item)", kind: "booking", payload: []),
                    via: stack.redis)
            }
        }
        try await stack.redis.send(
            "SET", keys.lease("k2-0", in: keys.stream("bookings")), "someone-else", "PX", 60_000)
        // The first stream's group vanished: what the others deliver still comes back.
        try await stack.redis.send("XGROUP", "DESTROY", streams[0], "workers")

        let terms = StreamConsumer.LeaseTerms(
            keys: keys, ownerPrefix: "worker-a:1:", ttl: .seconds(30))
        let read = try await consumer.read(count: 3, block: .zero, first: 0, leasing: terms, via: stack.redis)
        #expect(read.entries.map(\.entry.key) == ["k1-0", "k1-1", "k2-0"], "at most the budget, in stream order")
        #expect(read.entries.map(\.held) == [true, true, false])
        for leased in read.entries where leased.held {
            #expect(leased.lease.owner == "worker-a:1:\(leased.entry.id)")
            #expect(try await stack.redis.send("GET", leased.lease.key).string == leased.lease.owner)
        }
        #expect(
            try await stack.redis.send("GET", keys.lease("k2-0", in: keys.stream("bookings"))).string
                == "someone-else")
        let recreated = try await stack.redis.send("XINFO", "GROUPS", streams[0])
        #expect(recreated.array?.count == 1, "the missing group was created again")
        let next = try await consumer.read(count: 10, block: .zero, first: 0, leasing: terms, via: stack.redis)
        #expect(Set(next.entries.map(\.entry.key)) == ["k0-0", "k0-1", "k2-1"])
        await stack.shutdown()
    }

    @Test func oneHeartbeatRenewsEveryHeldLeaseInOneCall() async throws {
        let stack = try await ProcessStack.start(ingress: 0, workers: 0)
        let keys = RedisKeys(prefix: stack.prefix)
        let stream = stack.stream("bookings")
        let count = 300  // more than one renewal batch (256)
        // Generous against a loaded machine (the suite runs beside whole process stacks): a
        // heartbeat every quarter TTL, so a stall of over a second is needed to lose a lease.
        let ttl = Duration.seconds(2)
        let leases = (0..<count).map {
            Lease(key: keys.lease("k\($0)", in: keys.stream("bookings")), owner: "worker-a:\($0)", ttl: ttl)
        }
        let entries = (0..<count).map {
            StreamEntry(id: "1-\($0)", stream: stream, key: "k\($0)", kind: "booking", payload: [])
        }
        let taken = try await Lease.acquire(leases, via: stack.redis)
        #expect(taken == Array(repeating: true, count: count))
        // A second acquisition of the same keys takes nothing.
        let again = try await Lease.acquire(
            leases.map { Lease(key: $0.key, owner: "worker-b", ttl: ttl) }, via: stack.redis)
        #expect(again == Array(repeating: false, count: count))

        let keeper = LeaseKeeper()
        for (lease, entry) in zip(leases, entries) { keeper.hold(lease, for: entry) }
        let heartbeat = Duration.milliseconds(500)
        let started = ContinuousClock.now
        let running = Task {
            await keeper.run(every: heartbeat, consumer: "worker-a", redis: stack.redis, logger: Logger(label: "t"))
        }
        try await Task.sleep(for: ttl * 2)  // two TTLs: without renewals every lease is gone
        running.cancel()
        await running.value
        let elapsed = ContinuousClock.now - started

        // One MGET, not 300 round trips: the check itself must not outlast a lease.
        let owners = try await stack.redis.send(RedisCommand(["MGET"] + leases.map { $0.key as any RedisArgument }))
        let alive = zip(owners.array ?? [], leases).filter { $0.0.string == $0.1.owner }.count
        #expect(alive == count, "every lease renewed")
        // Two calls per heartbeat (300 leases in batches of 256), not one per lease.
        let beats = Int((elapsed / heartbeat).rounded(.up))
        #expect(keeper.renewalCalls >= 2, "renewed at all")
        #expect(keeper.renewalCalls <= 2 * beats, "\(keeper.renewalCalls) calls over \(beats) heartbeats")

        // A lease lost meanwhile is reported, unless its completion is under way.
        try await stack.redis.send("DEL", leases[0].key, leases[1].key)
        keeper.completing(leases[1])
        let lost = try await keeper.renewAll(consumer: "worker-a", redis: stack.redis)
        #expect(lost.map(\.owner) == [leases[0].owner])
        #expect(keeper.count == count - 1, "a lost lease is not renewed again")
        await stack.shutdown()
    }

    /// A kind of its own: decodes a note, "applies" it with one statement, publishes its outcome.
    struct NoteHandler: MessageHandler {
        var kind: String { "test.note" }

        func decode(_ entry: StreamEntry) throws(UnprocessableMessage) -> String {
            let text = String(decoding: entry.payload, as: UTF8.self)
            guard !text.isEmpty else { throw UnprocessableMessage("an empty note") }
            return text
        }

        func handle(_ note: String, entry: StreamEntry, context: HandlerContext) async throws -> HandledMessage {
            let length = try await context.withConnection("the note") { connection in
                try await connection.query("SELECT length(\(note))").single().decode(Int64.self, at: 0)
            }
            return HandledMessage(
                outcome: "noted", duplicate: false,
                published: PublishedResult(requestID: entry.key, body: Array("{\"length\":\(length)}".utf8)))
        }
    }

    @Test func aNewKindIsOneHandlerAndUnknownOrUndecodableOnesAreDeadLettered() async throws {
        let stack = try await ProcessStack.start(ingress: 0, workers: 0)
        let keys = RedisKeys(prefix: stack.prefix)
        let stream = stack.stream("bookings")
        let entries = [
            StreamEntry(stream: stream, key: "note-1", kind: "test.note", payload: Array("hello".utf8)),
            StreamEntry(stream: stream, key: "note-2", kind: "test.note", payload: []),
            StreamEntry(stream: stream, key: "other-1", kind: "test.other", payload: Array("x".utf8)),
        ]
        let delivered = try await Self.deliver(entries, stack: stack, consumer: "worker-a")
        let processor = EntryProcessor(
            configuration: WorkerConfiguration(keys: keys, consumerName: "worker-a"),
            deadLetterDatabase: stack.postgres,
            database: stack.workerPostgres, redis: stack.workerRedis,
            logger: Logger(label: "test.kinds"),
            handlers: [NoteHandler()])
        for claimed in await processor.lease(delivered) { await processor.process(claimed) }

        #expect(try await stack.redis.send("GET", keys.result("note-1")).string == #"{"length":5}"#)
        #expect(try await stack.pendingCount("bookings") == 0, "all three handled")
        let reasons = try await stack.postgres.query("SELECT message_key, last_error FROM dead_letters ORDER BY 1")
            .map { try ($0.decode(String.self, at: 0), $0.decode(String.self, at: 1)) }
        #expect(reasons.count == 2, "\(reasons)")
        #expect(reasons.first?.0 == "note-2" && reasons.first?.1.contains("an empty note") == true, "\(reasons)")
        #expect(reasons.last?.0 == "other-1" && reasons.last?.1.contains("unknown kind test.other") == true)
        await stack.shutdown()
    }
}
