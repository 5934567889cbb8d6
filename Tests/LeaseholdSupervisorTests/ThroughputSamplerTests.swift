import Foundation
import LeaseholdPostgres
import LeaseholdQueue
import LeaseholdRedis
import LeaseholdRuntime
import LeaseholdTesting
import Logging
import Testing

@testable import LeaseholdSupervisor

/// The backlog and throughput samples behind the ops console's chart, against real servers: what
/// a sample counts, the list's cap, and that only the leader records them.
@Suite("Throughput sampler", .enabled(if: IntegrationEnvironment.isAvailable))
struct ThroughputSamplerTests {
    @Test func aSampleCountsTheBacklogAndTheProcessedMessagesAndTheListIsCapped() async throws {
        let database = try await TemporaryDatabase.create()
        let postgres = database.client(size: 2)
        _ = try await Migrator(client: postgres).migrate(
            try Migration.load(from: LeaseholdExecutable.migrationsDirectory))
        try await SupervisorRedisFixture.withKeys { redis, keys in
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

    @Test func onlyTheLeaderSamples() async throws {
        let database = try await TemporaryDatabase.create()
        let postgres = database.client(size: 4)
        _ = try await Migrator(client: postgres).migrate(
            try Migration.load(from: LeaseholdExecutable.migrationsDirectory))
        try await SupervisorRedisFixture.withKeys { redis, keys in
            let configuration = SupervisorConfiguration(
                keys: keys, interval: .milliseconds(20), leader: .init(ttl: .seconds(5)),
                sampleInterval: .milliseconds(200))
            try await StreamConsumer(streams: configuration.streams, consumer: "setup").ensureGroups(via: redis)
            let electors = (0..<2).map { index in
                RunningElector(
                    keys: keys, configuration: configuration.leader,
                    redis: try! IntegrationEnvironment.redisConfiguration(), candidateID: "candidate-\(index)")
            }
            let services = electors.map { running in
                let service = SupervisorService(
                    configuration: configuration, elector: running.elector, redis: redis, postgres: postgres,
                    logger: Logger(label: "sampler-test"))
                return Task { try await service.run() }
            }
            // Until five samples are in (a loaded machine may take a while to elect and pass).
            let deadline = ContinuousClock.now + .seconds(30)
            while try await ThroughputSampler.samples(keys: keys, redis: redis).count < 5,
                ContinuousClock.now < deadline
            {
                try await Task.sleep(for: .milliseconds(50))
            }
            for task in services { task.cancel() }
            for task in services { _ = try? await task.value }
            for running in electors { await running.stop() }
            let samples = try await ThroughputSampler.samples(keys: keys, redis: redis)
            #expect(samples.count >= 5, "got \(samples.count)")
            let gaps = zip(samples.dropFirst(), samples).map { $0.at - $1.at }
            #expect(gaps.allSatisfy { $0 >= 150 }, "one sampler, every 200 ms; no second one in between: \(gaps)")
        }
        await postgres.close()
        try await database.drop()
    }
}
