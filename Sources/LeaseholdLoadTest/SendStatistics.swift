import Histogram
import LeaseholdCore
import NIOConcurrencyHelpers

/// What the sending clients share: the next request index, the answer counters, the HTTP
/// latency histograms (every answer, the accepted ones) and how late the generator sent, and,
/// for a plot or an overload report, one timing sample per answered request.
final class SendStatistics: Sendable {
    /// One answered request, for the latency-over-time plot.
    struct Sample: Sendable {
        var index: Int
        /// When it was (scheduled to be) sent, since the first request.
        var sentMilliseconds: UInt32
        var latencyMicroseconds: UInt32
        /// How late the client sent it (part of the latency above).
        var lagMicroseconds: UInt32 = 0
        var status: UInt16
        var accepted: Bool
    }

    private struct State {
        var next = 0
        /// No index at or past this is handed out (a duration run's deadline).
        var stopAt = Int.max
        var sent = 0
        var accepted = 0
        var rejected = 0
        var errors = 0
        var ambiguous = 0
        var statuses: [Int: Int] = [:]
        var unanswered: [Int] = []
        var rejectedIndices: [Int] = []
        /// Requests the generator did not send because it was already too late for them.
        var droppedIndices: [Int] = []
        var latency = LatencySummary.makeHistogram()
        var acceptedLatency = LatencySummary.makeHistogram()
        var lag = LatencySummary.makeHistogram()
        /// 503 answers without a `Retry-After` header.
        var withoutRetryAfter = 0
        var samples: [Sample] = []
    }

    private let state = NIOLockedValueBox(State())
    private let limit: Int?
    private let recordSamples: Bool

    /// - Parameters:
    ///   - limit: the number of requests to hand out; `nil` for no limit (a duration run).
    ///   - recordSamples: keep one ``Sample`` per answered request.
    init(limit: Int?, recordSamples: Bool) {
        self.limit = limit
        self.recordSamples = recordSamples
    }

    /// The next request index, or `nil` when every request has been handed out.
    func claim() -> Int? {
        state.withLockedValue { state in
            guard state.next < min(limit ?? .max, RequestPlan.indexLimit, state.stopAt) else { return nil }
            defer { state.next += 1 }
            return state.next
        }
    }

    /// Hands out no index from `index` on, and `index` itself is not sent: with a fixed rate,
    /// request `index` and every later one are due after the deadline. Indices below it are (or
    /// will be) sent, so the sent requests are always `0..<sent`.
    func stop(at index: Int) {
        state.withLockedValue { $0.stopAt = min($0.stopAt, index) }
    }

    /// Records an answer to request `index`. An `ambiguous` answer (a 503 saying the outcome is
    /// unknown) counts with the unanswered requests: it may have reached the stream.
    ///
    /// - Parameters:
    ///   - sentAt: when it was (scheduled to be) sent, since the first request.
    ///   - lag: how much later than scheduled the client sent it (zero in a closed loop).
    ///   - retryAfter: whether the answer had a `Retry-After` header (counted for 503s).
    func record(
        index: Int, status: Int, accepted: Bool, ambiguous: Bool = false, sentAt: Duration, latency: Duration,
        lag: Duration = .zero, retryAfter: Bool = true
    ) {
        let micros = UInt64(max(1, latency.microseconds))
        state.withLockedValue { state in
            state.sent += 1
            if status == 503 && !retryAfter { state.withoutRetryAfter += 1 }
            _ = state.lag.record(UInt64(max(1, lag.microseconds)))
            state.statuses[status, default: 0] += 1
            if accepted {
                state.accepted += 1
            } else if ambiguous {
                state.ambiguous += 1
                state.unanswered.append(index)
            } else {
                state.rejected += 1
                state.rejectedIndices.append(index)
            }
            _ = state.latency.record(micros)
            if accepted { _ = state.acceptedLatency.record(micros) }
            if recordSamples {
                state.samples.append(
                    Sample(
                        index: index, sentMilliseconds: UInt32(clamping: sentAt.microseconds / 1000),
                        latencyMicroseconds: UInt32(clamping: micros),
                        lagMicroseconds: UInt32(clamping: max(0, lag.microseconds)), status: UInt16(clamping: status),
                        accepted: accepted))
            }
        }
    }

    /// Records a request that got no answer (connection refused, timeout): it may or may not have
    /// reached the stream.
    func recordError(index: Int) {
        state.withLockedValue { state in
            state.sent += 1
            state.errors += 1
            state.unanswered.append(index)
        }
    }

    /// Records a request the client did not send: it was due more than the allowed lag ago (the
    /// load generator could not keep up). It is neither sent nor answered.
    func recordDropped(index: Int) {
        state.withLockedValue { $0.droppedIndices.append(index) }
    }

    /// Indices handed out so far: every request below this was sent or dropped.
    var handedOut: Int { state.withLockedValue { min($0.next, $0.stopAt) } }
    /// Indices of the requests dropped for being too late (see ``recordDropped(index:)``).
    var droppedIndices: [Int] { state.withLockedValue { $0.droppedIndices } }
    var sent: Int { state.withLockedValue { $0.sent } }
    var accepted: Int { state.withLockedValue { $0.accepted } }
    var rejected: Int { state.withLockedValue { $0.rejected } }
    var errors: Int { state.withLockedValue { $0.errors } }
    var ambiguous: Int { state.withLockedValue { $0.ambiguous } }
    /// Answers by HTTP status.
    var statuses: [Int: Int] { state.withLockedValue { $0.statuses } }
    /// Indices of requests whose outcome the client does not know: no answer, or an ambiguous 503.
    var unanswered: [Int] { state.withLockedValue { $0.unanswered } }
    /// Indices of requests answered with anything but the accepted status.
    var rejectedIndices: [Int] { state.withLockedValue { $0.rejectedIndices } }
    var httpLatency: LatencySummary { LatencySummary(state.withLockedValue { $0.latency }) }
    /// HTTP latency of the accepted answers only.
    var acceptedLatency: LatencySummary { LatencySummary(state.withLockedValue { $0.acceptedLatency }) }
    /// How late the clients sent (actual send time − scheduled time): a large figure means the
    /// load generator could not keep up with the rate asked of it.
    var lag: LatencySummary { LatencySummary(state.withLockedValue { $0.lag }) }
    /// 503 answers that came without a `Retry-After` header.
    var withoutRetryAfter: Int { state.withLockedValue { $0.withoutRetryAfter } }
    var samples: [Sample] { state.withLockedValue { $0.samples } }

    /// Sent, accepted and failed (rejected + unanswered) so far.
    var counts: (sent: Int, accepted: Int, failed: Int) {
        state.withLockedValue { ($0.sent, $0.accepted, $0.errors + $0.rejected) }
    }
}
