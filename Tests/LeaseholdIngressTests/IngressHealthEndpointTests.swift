import Foundation
import LeaseholdLoadTest
import LeaseholdLocalStack
import LeaseholdReactor
import LeaseholdTesting
import Testing

/// `/healthz`, and `/readyz` while Redis answered a moment ago, are answered on the event loop
/// that read them, not by the request handlers on the reactor thread: a flood that keeps the
/// reactor busy (here: one job that holds its thread for 1.5 s) does not make an orchestrator's
/// probe wait. Through the router, both waited for the reactor (about 1.5 s here).
@Suite(.enabled(if: IntegrationEnvironment.isAvailable), .timeLimit(.minutes(1)))
struct IngressHealthEndpointTests {
    @Test func healthAndAFreshReadinessAnswerWhileTheReactorIsBusy() async throws {
        try await IngressEnqueueTests.withIngress { base, _, reactor in
            // Readiness has seen Redis answer (its first PING goes out when ingress starts).
            let deadline = ContinuousClock.now + .seconds(10)
            while try await IngressProbe.status(of: base + "/readyz") != 200 {
                guard ContinuousClock.now < deadline else { throw TestSetupError("/readyz never answered 200") }
                try await Task.sleep(for: .milliseconds(20))
            }
            try await Task.sleep(for: .milliseconds(300))  // a PING answered just before the stall
            let blocked = ContinuousClock.now
            reactor.execute(afterPendingJobs: { Thread.sleep(forTimeInterval: 1.5) })
            try await Task.sleep(for: .milliseconds(50))
            for path in ["/healthz", "/readyz"] {
                let started = ContinuousClock.now
                #expect(try await IngressProbe.status(of: base + path) == 200, "\(path)")
                let took = started.duration(to: .now)
                #expect(took < .milliseconds(500), "\(path) took \(took) while the reactor was held")
            }
            #expect(blocked.duration(to: .now) < .milliseconds(1_400), "the probes were made during the stall")
            // The router still serves everything else once the reactor is free again.
            try await Task.sleep(for: .milliseconds(1_600))
            #expect(try await IngressProbe.status(of: base + "/metrics") == 200)
        }
    }

    /// With Redis unreachable from the start, readiness was never fresh: `/readyz` goes to the
    /// router, which asks Redis there and then and answers 503; `/healthz` still answers 200.
    @Test func readinessIsNeverAnsweredFromAStaleCheck() async throws {
        var configuration = try IntegrationEnvironment.redisConfiguration()
        configuration.port = try freeLoopbackPort()
        try await IngressEnqueueTests.withIngress(redis: configuration) { base, _, _ in
            let health = try await IngressProbe.status(of: base + "/healthz")
            let readiness = try await IngressProbe.status(of: base + "/readyz")
            #expect(health == 200)
            #expect(readiness == 503)
        }
    }
}
