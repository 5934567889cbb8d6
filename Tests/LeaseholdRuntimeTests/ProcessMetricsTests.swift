import Foundation
import LeaseholdRuntime
import Prometheus
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
    }
}
