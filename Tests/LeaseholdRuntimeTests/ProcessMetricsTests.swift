import Foundation
import LeaseholdRuntime
import Prometheus
import Synchronization
import Testing

@testable import LeaseholdRuntime

extension UnitTests {
    @Suite("ProcessMetrics")
    struct ProcessMetricsTests {
        /// A readiness check that outlasts its timeout counts as not ready, is not cancelled (it may be
        /// opening a connection others wait for), and its late answer is the next refresh's. The check
        /// here answers only when the test lets it: waiting for it would hang until the time limit.
        @Test(
            "a slow check is not waited for, not cancelled, and answers later", .timeLimit(.minutes(1)))
        func slowCheckIsNeitherWaitedForNorCancelled() async throws {
            let (gate, open) = AsyncStream<Void>.makeStream()
            let check = Task<Bool, Never> {
                for await _ in gate {}
                return !Task.isCancelled
            }
            #expect(await ProcessMetrics.answer(of: check, within: .milliseconds(100)) == nil)
            open.finish()
            #expect(await ProcessMetrics.answer(of: check, within: .seconds(50)) == true, "the check was cancelled")
        }

        @Test("the figures are on the registry: CPU, memory, descriptors, start time and readiness")
        func figures() async throws {
            let registry = PrometheusCollectorRegistry()
            let metrics = ProcessMetrics(registry: registry, interval: .milliseconds(50), ready: { false })
            let running = Task { try await metrics.run() }
            var page = ""
            let deadline = ContinuousClock.now + .seconds(30)
            while !page.contains("leasehold_ready 0"), ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
                page = String(decoding: registry.emitToBuffer(), as: UTF8.self)
            }
            running.cancel()
            for name in [
                "process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds",
                "process_start_time_seconds", "leasehold_ready 0",
            ] {
                #expect(page.contains(name), "\(name) missing:\n\(page)")
            }
            let start = page.split(separator: "\n").first { $0.hasPrefix("process_start_time_seconds ") }
            let seconds = try #require(start.flatMap { Double($0.split(separator: " ")[1]) })
            #expect(abs(seconds - Date().timeIntervalSince1970) < 3600, "a start time within the hour: \(seconds)")
        }

        /// One series per dependency: 1 when its check answers true, 0 when it answers false or not
        /// at all within the timeout (a hung server is as unreachable as a refusing one), and a hung
        /// check holds up neither the other series nor the next refreshes.
        @Test(
            "leasehold_dependency_up: 1 for a check that answers, 0 for one that fails or hangs",
            .timeLimit(.minutes(1)))
        func dependencies() async throws {
            let registry = PrometheusCollectorRegistry()
            let (never, _) = AsyncStream<Void>.makeStream()
            let postgresChecks = CallCount()
            let hungChecks = CallCount()
            let metrics = ProcessMetrics(
                registry: registry, interval: .milliseconds(50), readinessTimeout: .milliseconds(100),
                dependencies: [
                    .init("postgres") {
                        postgresChecks.count()
                        return true
                    },
                    .init("redis") { false },
                    // Answers its first check, then never again.
                    .init("hung") {
                        guard hungChecks.count() > 1 else { return true }
                        for await _ in never {}
                        return true
                    },
                ],
                ready: nil)
            let running = Task { try await metrics.run() }
            func page() -> String { String(decoding: registry.emitToBuffer(), as: UTF8.self) }
            let hungUp = #"leasehold_dependency_up{dependency="hung"} 1"#
            let hungDown = #"leasehold_dependency_up{dependency="hung"} 0"#
            let deadline = ContinuousClock.now + .seconds(30)
            while !page().contains(hungUp), ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(5))
            }
            #expect(page().contains(hungUp), "the first check answered: \(page())")
            // Then the check hangs: 0 after its timeout, and the refreshes go on meanwhile.
            while !(page().contains(hungDown) && postgresChecks.value >= 4),
                ContinuousClock.now < deadline
            {
                try await Task.sleep(for: .milliseconds(20))
            }
            running.cancel()
            let last = page()
            #expect(last.contains(hungDown), "\(last)")
            #expect(postgresChecks.value >= 4, "the refreshes went on past the hung check")
            #expect(hungChecks.value == 2, "a hung check is waited for again, not started anew")
            #expect(last.contains(#"leasehold_dependency_up{dependency="postgres"} 1"#), "\(last)")
            #expect(last.contains(#"leasehold_dependency_up{dependency="redis"} 0"#), "\(last)")
            #expect(!last.contains("leasehold_ready"), "no readiness series without a readiness check")
        }
    }
}

/// How many times a check was called, from any thread.
private final class CallCount: Sendable {
    private let calls = Atomic<Int>(0)

    /// Counts a call; returns the number of calls so far, this one included.
    @discardableResult
    func count() -> Int { calls.add(1, ordering: .relaxed).newValue }

    var value: Int { calls.load(ordering: .relaxed) }
}
