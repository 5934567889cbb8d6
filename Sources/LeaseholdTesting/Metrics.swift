import AsyncHTTPClient
import NIOCore

/// The sum of every sample of `name` (with all the `labels` given) in Prometheus text.
public func metricValue(_ text: String, _ name: String, _ labels: [String: String] = [:]) -> Double {
    var total = 0.0
    for line in text.split(separator: "\n") where !line.hasPrefix("#") {
        guard line.hasPrefix(name + " ") || line.hasPrefix(name + "{") else { continue }
        let labelsMatch = labels.allSatisfy { line.contains("\($0.key)=\"\($0.value)\"") }
        guard labelsMatch, let value = line.split(separator: " ").last.flatMap({ Double($0) }) else { continue }
        total += value
    }
    return total
}

/// A role's `/metrics` page at `url`, or `nil` when it does not answer 200 within 10 s.
public func scrapeMetrics(_ url: String) async -> String? {
    guard let response = try? await HTTPClient.shared.execute(HTTPClientRequest(url: url), timeout: .seconds(10)),
        response.status == .ok,
        let body = try? await response.body.collect(upTo: 4 << 20)
    else { return nil }
    return String(buffer: body)
}
