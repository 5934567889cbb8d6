import Foundation
import LeaseholdPostgres
import LeaseholdQueue
import LeaseholdRuntime
import LeaseholdSupervisor
import LeaseholdTesting
import Logging
import Testing

/// The throughput samples behind the ops console's chart are the supervisor's to record, and only
/// the leader's: two supervisors running side by side record one series.
@Suite("Throughput samples: only the leader records them", .enabled(if: IntegrationEnvironment.isAvailable))
struct LeaderSamplingTests {
    @Test func onlyTheLeaderSamples() async throws {
        let database = try await TemporaryDatabase.create()
        let postgres = database.client(size: 4)
        _ = try await Migrator(client: postgres).migrate(
            try Migration.load(from: LeaseholdExecutable.migrationsDirectory))
        try await RedisTestKeys.withKeys { redis, keys in
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
