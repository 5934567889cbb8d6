import Foundation
import LeaseholdTesting
import Testing

/// Flood control in the real `leasehold ingress` process, set from its environment: throttled
/// requests are answered as documented and counted per source in `/metrics`, apart from the 503s.
extension SystemTests {
    @Suite("Flood control from the environment, counted in /metrics")
    struct FloodControlSystemTests {
        /// The value of the sample `name{labels}` on a Prometheus text page.
        static func sample(_ page: String, _ series: String) -> Double? {
            for line in page.split(separator: "\n") where line.hasPrefix(series + " ") {
                return Double(line.dropFirst(series.count + 1))
            }
            return nil
        }

        static let telegram = #"leasehold_ingress_throttled_total{source="telegram"}"#
        static let api = #"leasehold_ingress_throttled_total{source="api"}"#

        @Test func throttledRequestsAreAnsweredAndCountedPerSource() async throws {
            let stack = try await ProcessStack.start(
                ingress: 1, workers: 0,
                ingressEnvironment: [
                    "LEASEHOLD_TELEGRAM_FLOOD_RATE": "1", "LEASEHOLD_TELEGRAM_FLOOD_BURST": "2",
                    "LEASEHOLD_API_FLOOD_RATE": "1", "LEASEHOLD_API_FLOOD_BURST": "2",
                ])
            let before = try await stack.request(.GET, "/metrics").body
            #expect(Self.sample(before, Self.telegram) == 0, "the series exist from the start")
            #expect(Self.sample(before, Self.api) == 0)

            let start = ContinuousClock.now
            var slowedDown = 0
            for updateID in Int64(1)...8 {
                let answer = try await stack.telegramCallback(updateID: updateID, userID: 77, data: "book:1")
                #expect(answer.status == 200)
                #expect(answer.json?["method"] as? String == "answerCallbackQuery")
                if (answer.json?["text"] as? String)?.contains("Слишком много запросов") == true { slowedDown += 1 }
            }
            var throttled = 0
            let run = IntegrationEnvironment.uniqueName("r")
            for index in 0..<8 {
                let answer = try await stack.book(requestID: "\(run)-\(index)", userID: 5, slotID: 1)
                #expect([202, 429].contains(answer.status), "\(answer.status) \(answer.body)")
                if answer.status == 429 {
                    throttled += 1
                    #expect(answer.header("Retry-After") == "1")
                }
            }
            if ContinuousClock.now - start < .seconds(6) {
                #expect(slowedDown > 0 && throttled > 0, "8 each at 1/s after a burst of 2, in under 6 s")
            }
            #expect(try await stack.streamLength("telegram") == 8 - slowedDown)
            #expect(try await stack.streamLength("bookings") == 8 - throttled)

            let after = try await stack.request(.GET, "/metrics").body
            #expect(Self.sample(after, Self.telegram) == Double(slowedDown))
            #expect(Self.sample(after, Self.api) == Double(throttled))
            for line in after.split(separator: "\n") where line.hasPrefix("leasehold_ingress_refused_total{") {
                #expect(line.hasSuffix(" 0"), "throttling is not a refusal: \(line)")
            }
            await stack.shutdown()
        }
    }
}
