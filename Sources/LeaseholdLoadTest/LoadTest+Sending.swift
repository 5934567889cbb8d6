import AsyncHTTPClient
import LeaseholdReactor

extension LoadTest {
    /// One client: takes the next request index, sends it, records the answer — until the
    /// requests are all handed out or the deadline passed.
    func drive(
        plan: RequestPlan, stats: SendStatistics, tracker: CompletionTracker, http: HTTPClient,
        started: ContinuousClock.Instant, deadline: ContinuousClock.Instant?
    ) async {
        let configuration = self.configuration
        while let (index, sent) = await nextRequest(stats: stats, started: started, deadline: deadline) {
            let request = plan.request(
                index, baseURL: configuration.ingressURLs[index % configuration.ingressURLs.count])
            do {
                let lag = sent.duration(to: .now)
                let response = try await http.execute(request, timeout: .seconds(30))
                _ = try await response.body.collect(upTo: 64 * 1024)
                let status = Int(response.status.code)
                let accepted = status == configuration.input.acceptedStatus(ofRequest: index)
                if accepted { tracker.accepted(index) }
                let ambiguous = Self.outcomeUnknown(
                    status: status, outcome: response.headers.first(name: "Leasehold-Outcome"))
                stats.record(
                    index: index, status: status, accepted: accepted, ambiguous: ambiguous,
                    sentAt: started.duration(to: sent), latency: sent.duration(to: .now), lag: lag,
                    retryAfter: response.headers.contains(name: "Retry-After"))
            } catch {
                stats.recordError(index: index)
            }
        }
    }

    /// The same client loop over ``LoadHTTPConnection``s on `reactor` (plain `http://` ingress
    /// URLs): request `index` goes to `targets[index % targets.count]`, as above.
    func drive(
        plan: RequestPlan, stats: SendStatistics, tracker: CompletionTracker, targets: [LoadTarget], reactor: Reactor,
        started: ContinuousClock.Instant, deadline: ContinuousClock.Instant?
    ) async {
        let configuration = self.configuration
        let connections = targets.map { LoadHTTPConnection(reactor: reactor, address: $0.address) }
        defer { for connection in connections { connection.close() } }
        while let (index, sent) = await nextRequest(stats: stats, started: started, deadline: deadline) {
            let target = index % targets.count
            let request = plan.requestBytes(index, host: targets[target].host)
            do {
                let lag = sent.duration(to: .now)
                let answer = try await connections[target].exchange(request, deadline: .now + .seconds(30))
                let accepted = answer.status == configuration.input.acceptedStatus(ofRequest: index)
                if accepted { tracker.accepted(index) }
                let ambiguous = Self.outcomeUnknown(status: answer.status, outcome: answer.outcome)
                stats.record(
                    index: index, status: answer.status, accepted: accepted, ambiguous: ambiguous,
                    sentAt: started.duration(to: sent), latency: sent.duration(to: .now), lag: lag,
                    retryAfter: answer.retryAfter)
            } catch {
                stats.recordError(index: index)
            }
        }
    }

    /// Whether an answer leaves the request's fate open, so that it counts with the unanswered ones
    /// (it may have reached the stream): a 503 from ingress with `Leasehold-Outcome: unknown`
    /// (Redis stopped answering mid-enqueue), or a 502 or 504 from a reverse proxy in front of
    /// ingress (the replica died or stalled after the request reached it; its answer was lost).
    public static func outcomeUnknown(status: Int, outcome: String?) -> Bool {
        switch status {
        case 503: outcome == "unknown"
        case 502, 504: true
        default: false
        }
    }

    /// The next request a client loop sends, and when it counts as sent; `nil` when the run is
    /// over. Closed loop: the next index at once, nothing new after the deadline. Fixed rate: the
    /// schedule decides (``RateSchedule``, with the recovery phase of an overload run), waiting
    /// until the index is due (a request due before the end still goes out, however late, and
    /// counts from its due time).
    func nextRequest(
        stats: SendStatistics, started: ContinuousClock.Instant, deadline: ContinuousClock.Instant?
    ) async -> (index: Int, sent: ContinuousClock.Instant)? {
        guard let schedule = configuration.schedule else {
            if let deadline, ContinuousClock.now >= deadline { return nil }
            return stats.claim().map { ($0, ContinuousClock.now) }
        }
        while let index = stats.claim() {
            guard let offset = schedule.due(index) else {
                stats.stop(at: index)
                return nil
            }
            let due = started + offset
            if let allowed = configuration.allowedLag, due.duration(to: .now) > allowed {
                stats.recordDropped(index: index)
                continue
            }
            if due > .now { try? await Task.sleep(until: due) }
            return (index, due)
        }
        return nil
    }
}
