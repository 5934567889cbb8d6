import Foundation
import LeaseholdQueue
import LeaseholdRedis
import LeaseholdSupervisor
import LeaseholdTesting
import Testing

extension UnitTests {
    /// Lease timings need no Redis.
    @Suite struct LeaderElectorConfigurationTests {
        @Test("renewals every ttl/3, leadership for ttl - ttl/5 after each, unless set")
        func defaults() {
            let configuration = LeaderElector.Configuration(ttl: .seconds(9))
            #expect(configuration.renewInterval == .seconds(3))
            #expect(configuration.safetyMargin == .milliseconds(1_800))
            #expect(configuration.leadershipSpan == .milliseconds(7_200))
            let custom = LeaderElector.Configuration(ttl: .seconds(6), renewInterval: .seconds(1), safetyMargin: .zero)
            #expect(custom.renewInterval == .seconds(1))
            #expect(custom.leadershipSpan == .seconds(6))
        }
    }
}

/// Leader election against a real Redis, with a 1 s lease (renewed every 333 ms, leadership ending
/// 800 ms after the last successful renewal was sent, so a renewal may come 467 ms late).
///
/// Each test runs its own `redis-server` rather than the shared one: when the whole package's
/// tests run at once, the system tests load the shared server enough that a round trip can take
/// a second, and a candidate that cannot get an answer within its lease rightly never leads —
/// which says nothing about the election. A private server keeps the timing bounds meaningful.
///
/// Safety (never two leaders at once, never a leader past its deadline, never a takeover before
/// the lease expired) is asserted unconditionally. Timing bounds allow for the lateness of this
/// process's own timers, measured by a ``StallMonitor`` (see there for why).
@Suite(.enabled(if: IntegrationEnvironment.serverBinariesInstalled))
struct LeaderElectorTests {
    static let configuration = LeaderElector.Configuration(ttl: .seconds(1))
    /// How late a renewal may fire before the leader must step down.
    static let renewalSlack = configuration.leadershipSpan - configuration.renewInterval

    /// What a test gets: its own Redis, a client for it, a key layout, and the stall monitor.
    struct Context: Sendable {
        let server: PrivateRedisServer
        let client: RedisClient
        let keys: RedisKeys
        let stalls: StallMonitor

        /// Whether timers kept time well enough that the electors could renew on schedule, so a
        /// step-down would be a bug rather than the right response to a stalled process.
        var keptTime: Bool { stalls.worstLateness < LeaderElectorTests.renewalSlack - .milliseconds(50) }

        func holder() async throws -> String? {
            try await client.send("GET", keys.leader).string
        }
    }

    /// Waits for calm, starts a private Redis, runs `body` at high priority (the electors'
    /// priority, so the instants it measures are not skewed either), then kills the server (which
    /// takes the keys with it).
    static func withContext(_ body: @escaping @Sendable (Context) async throws -> Void) async throws {
        await StallMonitor.waitForCalm()
        let server = try await PrivateRedisServer()
        let context = Context(
            server: server,
            client: RedisClient(configuration: server.configuration(commandTimeout: .seconds(2)), size: 1),
            keys: RedisKeys(prefix: IntegrationEnvironment.uniqueName("lhs") + ":"), stalls: StallMonitor())
        let result = await Task(priority: .high) { try await body(context) }.result
        await context.stalls.stop()
        context.client.close()
        await server.kill()
        try result.get()
    }

    /// Starts one elector per ID, runs `body`, and stops them all, also when `body` throws (a
    /// stopped elector may be stopped again).
    static func withElectors(
        _ ids: [String], _ context: Context, _ body: @escaping @Sendable ([RunningElector]) async throws -> Void
    ) async throws {
        let redis = context.server.configuration(commandTimeout: .seconds(2))
        let electors = ids.map {
            RunningElector(keys: context.keys, configuration: configuration, redis: redis, candidateID: $0)
        }
        let result = await Task(priority: .high) { try await body(electors) }.result
        for elector in electors { await elector.stop() }
        try result.get()
    }

    /// Waits until one of `electors` leads; that one, or `nil` after `timeout`.
    static func waitForLeader(_ electors: [RunningElector], timeout: Duration = .seconds(5)) async -> RunningElector? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let leader = electors.first(where: \.isLeader) { return leader }
            try? await Task.sleep(for: .milliseconds(1))
        }
        return nil
    }

    @Test("of two candidates exactly one leads, and keeps leading while it renews")
    func exactlyOneLeader() async throws {
        try await Self.withContext { context in
            try await Self.withElectors(["candidate-a", "candidate-b"], context) { electors in
                let leader = try #require(await Self.waitForLeader(electors))
                let follower = try #require(electors.first { $0 !== leader })

                // More than two lease lifetimes, so leadership rests on renewals.
                let report = await LeadershipSampler.sample(electors.map(\.elector), for: .milliseconds(2_200))
                #expect(report.overlaps == 0)
                let holder = try await context.holder()
                if context.keptTime {
                    #expect(report.vacancies == 0)
                    #expect(report.leaderSamples.filter { $0 > 0 }.count == 1)
                    #expect(holder == leader.elector.candidateID)
                    #expect(leader.changes.map(\.leader) == [true])
                    #expect(follower.changes.isEmpty)
                }
            }
        }
    }

    @Test("a leader that stops releases the lease; the other takes over well within one TTL, never both at once")
    func handoverOnStop() async throws {
        try await Self.withContext { context in
            try await Self.withElectors(["candidate-a", "candidate-b"], context) { electors in
                let leader = try #require(await Self.waitForLeader(electors))
                let follower = try #require(electors.first { $0 !== leader })

                async let report = LeadershipSampler.sample(electors.map(\.elector), for: .milliseconds(1_500))
                try await Task.sleep(for: .milliseconds(400))
                let stopped = ContinuousClock.now
                await leader.stop()
                let takeover = await follower.wait(untilLeader: true, timeout: .seconds(3))
                let sampled = await report

                #expect(sampled.overlaps == 0)
                let tookOver = try #require(takeover, "the follower never took over")
                #expect(tookOver - stopped < Self.configuration.ttl + context.stalls.worstLateness)
                #expect(leader.changes.last?.leader == false)
                #expect(follower.changes.first?.leader == true)
                if context.keptTime {
                    #expect(tookOver - stopped < Self.configuration.renewInterval + .milliseconds(100))
                    #expect(leader.changes.map(\.leader) == [true, false])
                    #expect(follower.changes.map(\.leader) == [true])
                    #expect(try await context.holder() == follower.elector.candidateID)
                }
            }
        }
    }

    @Test("a leader that died without releasing is replaced as its lease expires, not a poll later")
    func takeoverAfterCrashedLeader() async throws {
        try await Self.withContext { context in
            let ttl = Self.configuration.ttl
            // Taken before the SET is sent: the lease cannot expire sooner than `ttl` after it.
            let crashed = ContinuousClock.now
            try await context.client.send("SET", context.keys.leader, "crashed-candidate", "PX", ttl.redisMilliseconds)
            try await Self.withElectors(["candidate-a"], context) { electors in
                let takeover = try #require(await electors[0].wait(untilLeader: true, timeout: .seconds(5)))
                let elapsed = takeover - crashed
                #expect(elapsed > ttl - .milliseconds(2), "took over a lease that had not expired: \(elapsed)")
                #expect(
                    elapsed < ttl + .milliseconds(150) + context.stalls.worstLateness, "took \(elapsed) after the crash"
                )
            }
        }
    }

    @Test("a leader whose lease was taken steps down at its next renewal and waits its turn")
    func stepsDownWhenLeaseTaken() async throws {
        try await Self.withContext { context in
            try await Self.withElectors(["candidate-a"], context) { electors in
                let elector = electors[0]
                _ = try #require(await elector.wait(untilLeader: true, timeout: .seconds(5)))

                try await context.client.send("SET", context.keys.leader, "intruder", "PX", 5_000)
                let taken = ContinuousClock.now
                let lost = try #require(await elector.wait(untilLeader: false, timeout: .seconds(2)))
                // At the next renewal, or at the latest at its deadline.
                #expect(lost - taken < Self.configuration.leadershipSpan + .milliseconds(50))
                if context.keptTime {
                    #expect(
                        lost - taken
                            < Self.configuration.renewInterval + .milliseconds(150) + context.stalls.worstLateness)
                }

                // It cannot lead while the intruder holds the lease.
                let samples = await LeadershipSampler.sample([elector.elector], for: .milliseconds(400))
                #expect(samples.leaderSamples == [0])
                #expect(try await context.holder() == "intruder")
                #expect(elector.changes.last?.leader == false)

                try await context.client.send("DEL", context.keys.leader)
                let freed = ContinuousClock.now
                let regained = try #require(await elector.wait(untilLeader: true, timeout: .seconds(2)))
                #expect(
                    regained - freed
                        < Self.configuration.renewInterval + .milliseconds(150) + context.stalls.worstLateness)
            }
        }
    }

    @Test("a leader whose Redis stops answering steps down before its lease could expire, without waiting for the call")
    func stepsDownWhenRedisHangs() async throws {
        try await Self.withContext { context in
            // The command timeout (3 s) is far beyond the lease: only the clock can end leadership in time.
            let elector = RunningElector(
                keys: context.keys, configuration: Self.configuration,
                redis: context.server.configuration(commandTimeout: .seconds(3)), candidateID: "frozen-candidate")
            let probe = RedisClient(
                configuration: context.server.configuration(commandTimeout: .seconds(1)), size: 1)

            // Freeze Redis between two renewals, knowing when the lease expires at the earliest and
            // when the elector means to stop leading; probe again if a renewal slipped in between.
            var frozen:
                (at: ContinuousClock.Instant, deadline: ContinuousClock.Instant, leaseExpiry: ContinuousClock.Instant)?
            for _ in 0..<20 where frozen == nil {
                guard await elector.wait(untilLeader: true, timeout: .seconds(5)) != nil,
                    let deadline = elector.elector.leadershipDeadline
                else { continue }
                let probed = ContinuousClock.now
                let remaining = try await probe.send("PTTL", context.keys.leader).int ?? -2
                context.server.freeze()
                let at = ContinuousClock.now
                if remaining > 0, elector.elector.leadershipDeadline == deadline {
                    frozen = (at, deadline, probed + .milliseconds(remaining))
                } else {
                    context.server.thaw()
                    try await Task.sleep(for: .milliseconds(50))
                }
            }
            let changesBefore = elector.changes.count

            // Poll `isLeader`, noting the instant *before* each read that said true: that read
            // happened after it, so if the elector ever claimed leadership at or past its deadline
            // (say, because it waited for the stuck call), one of these instants would show it.
            // Late polls only make the samples sparser, never wrong.
            var lastTrueRead: ContinuousClock.Instant?
            var stepped: ContinuousClock.Instant?
            let pollUntil = ContinuousClock.now + .seconds(2)
            while stepped == nil, ContinuousClock.now < pollUntil {
                let before = ContinuousClock.now
                if elector.isLeader { lastTrueRead = before } else { stepped = ContinuousClock.now }
                try await Task.sleep(for: .milliseconds(1))
            }
            // The callback comes from the race against the deadline, while the renewal is still stuck.
            var reported: ContinuousClock.Instant?
            for _ in 0..<2_000 where reported == nil {
                let changes = elector.changes
                if changes.count > changesBefore, changes.last?.leader == false { reported = changes.last?.at }
                if reported == nil { try await Task.sleep(for: .milliseconds(1)) }
            }
            await context.server.kill()
            await elector.stop()
            probe.close()

            let freeze = try #require(frozen, "could not freeze Redis between two renewals")
            #expect(stepped != nil, "still leader 2 s after Redis froze")
            // The elector's deadline comes before the lease could expire (the estimate of the
            // expiry is a lower bound: the PTTL was read after `probed`) …
            #expect(freeze.deadline < freeze.leaseExpiry)
            // … and it never claimed leadership at or after that deadline.
            if let lastTrueRead { #expect(lastTrueRead < freeze.deadline) }
            // `onLeadershipChange(false)` came at the deadline, not when the stuck call ended (3 s).
            let report = try #require(reported, "onLeadershipChange(false) was not called while the renewal was stuck")
            #expect(report >= freeze.deadline)
            #expect(report - freeze.deadline < .milliseconds(200) + context.stalls.worstLateness)
        }
    }
}
