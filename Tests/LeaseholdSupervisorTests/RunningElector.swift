import LeaseholdQueue
import LeaseholdRedis
import LeaseholdSupervisor
import Synchronization

/// A ``LeaderElector`` running in a task of its own, with its own client, recording every
/// leadership change it reports, so a test can stop one candidate while the others go on.
final class RunningElector: Sendable {
    let elector: LeaderElector
    private let client: RedisClient
    private let task: Task<Void, Never>
    private let log: ChangeLog

    /// The changes an elector reported, shared with its election task.
    private final class ChangeLog: Sendable {
        let entries = Mutex<[(leader: Bool, at: ContinuousClock.Instant)]>([])
    }

    init(
        keys: RedisKeys, configuration: LeaderElector.Configuration, redis: RedisConfiguration, candidateID: String
    ) {
        let client = RedisClient(configuration: redis, size: 2)
        let elector = LeaderElector(redis: client, keys: keys, configuration: configuration, candidateID: candidateID)
        let log = ChangeLog()
        self.client = client
        self.elector = elector
        self.log = log
        self.task = Task {
            await elector.run { leader in
                log.entries.withLock { $0.append((leader, ContinuousClock.now)) }
            }
        }
    }

    var isLeader: Bool { elector.isLeader }

    /// The changes reported through `onLeadershipChange`, in order.
    var changes: [(leader: Bool, at: ContinuousClock.Instant)] { log.entries.withLock { $0 } }

    /// Cancels the election (it steps down and releases the lease) and closes the client.
    func stop() async {
        task.cancel()
        await task.value
        client.close()
    }

    /// Polls ``isLeader`` every millisecond until it equals `leader`; the instant it did, or `nil`
    /// after `timeout`.
    func wait(untilLeader leader: Bool, timeout: Duration) async -> ContinuousClock.Instant? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if elector.isLeader == leader { return ContinuousClock.now }
            try? await Task.sleep(for: .milliseconds(1))
        }
        return nil
    }
}

/// Samples the `isLeader` of several electors every few milliseconds and counts the instants at
/// which two of them claimed leadership.
///
/// Reads are not simultaneous, so one sample reads A, then B, then A again: A true at both ends
/// means A was leader throughout (it cannot step down and come back within microseconds while B
/// holds the lease), so B true in between is a real overlap, never an artefact of the read order.
/// Every pair is checked in both orders.
struct LeadershipSampler {
    struct Report {
        var samples = 0
        var overlaps = 0
        /// Samples at which nobody was leader.
        var vacancies = 0
        /// How many samples each elector was leader in, by index.
        var leaderSamples: [Int]
    }

    static func sample(_ electors: [LeaderElector], for duration: Duration, every interval: Duration = .milliseconds(2))
        async -> Report
    {
        var report = Report(leaderSamples: Array(repeating: 0, count: electors.count))
        let deadline = ContinuousClock.now + duration
        while ContinuousClock.now < deadline {
            for i in electors.indices {
                for j in electors.indices where i != j {
                    if electors[i].isLeader && electors[j].isLeader && electors[i].isLeader { report.overlaps += 1 }
                }
            }
            let states = electors.map(\.isLeader)
            for (index, leader) in states.enumerated() where leader { report.leaderSamples[index] += 1 }
            if !states.contains(true) { report.vacancies += 1 }
            report.samples += 1
            try? await Task.sleep(for: interval)
        }
        return report
    }
}
