import Foundation
import LeaseholdPostgres
import LeaseholdQueue
import LeaseholdRedis
import LeaseholdRuntime
import LeaseholdTesting
import Testing

/// The backlog and throughput samples behind the ops console's chart, against real servers: what
/// a sample counts, and the list's cap.
@Suite("Throughput sampler", .enabled(if: IntegrationEnvironment.isAvailable))
struct ThroughputSamplerTests {
    @Test func aSampleCountsTheBacklogAndTheProcessedMessagesAndTheListIsCapped() async throws {
        let database = try await TemporaryDatabase.create()
        let postgres = database.client(size: 2)
        _ = try await Migrator(client: postgres).migrate(
            try Migration.load(from: LeaseholdExecutable.migrationsDirectory))
        try await RedisTestKeys.withKeys { redis, keys in
            let stream = keys.stream("bookings")
            try await StreamConsumer(streams: [stream], consumer: "setup").ensureGroups(via: redis)
            for index in 0..<2 {
                _ = try await StreamProducer(keys: keys, highWaterMark: 0).enqueue(
                    StreamEntry(stream: stream, key: "api:s\(index)", kind: "booking", payload: Array("{}".utf8)),
                    via: redis)
            }
            for index in 0..<3 {
                try await postgres.query(
                    "INSERT INTO inbox (message_key, kind, outcome) VALUES (\("api:done\(index)"), 'booking', 'booked')"
                )
            }
            let sampler = ThroughputSampler(keys: keys, interval: .seconds(30), capacity: 3)
            let now = Date()
            for step in 0..<5 {
                try await sampler.record(redis: redis, postgres: postgres, now: now.addingTimeInterval(Double(step)))
            }
            let samples = try await ThroughputSampler.samples(keys: keys, redis: redis)
            #expect(samples.count == 3, "capped")
            #expect(samples.map(\.at) == (2..<5).map { Int64((now.timeIntervalSince1970 + Double($0)) * 1000) })
            #expect(samples.allSatisfy { $0.backlog == 2 && $0.processed == 3 })
            #expect(samples[0].processedPerMinute == 6)
        }
        await postgres.close()
        try await database.drop()
    }
}
