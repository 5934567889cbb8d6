import Foundation
import LeaseholdQueue

/// The overview's chart: backlog and processed messages per minute over the last hour, as an
/// inline SVG (no script). Backlog is the filled area on the left scale, throughput the line on
/// the right scale.
public enum ConsoleChart {
    static let width = 720.0
    static let height = 180.0
    static let left = 48.0
    static let right = 56.0
    static let top = 12.0
    static let bottom = 24.0

    /// The SVG for `samples` (oldest first) ending at `now`; a note when there are none.
    public static func svg(_ samples: [ThroughputSampler.Sample], now: Date = Date()) -> String {
        let plotWidth = width - left - right
        let plotHeight = height - top - bottom
        let end = now.timeIntervalSince1970
        let start = end - 3600
        func x(_ sample: ThroughputSampler.Sample) -> Double {
            left + max(0, min(1, (sample.date.timeIntervalSince1970 - start) / 3600)) * plotWidth
        }
        let maxBacklog = max(1, Double(samples.map(\.backlog).max() ?? 0))
        let maxRate = max(1, samples.map(\.processedPerMinute).max() ?? 0)
        func y(_ value: Double, _ scale: Double) -> Double { top + plotHeight - value / scale * plotHeight }
        var svg = """
            <svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 \(Int(width)) \(Int(height))" \
            class="chart" role="img" aria-label="Backlog and throughput over the last hour">
            <rect x="\(left)" y="\(top)" width="\(plotWidth)" height="\(plotHeight)" class="plot"/>
            """
        for minute in stride(from: 0, through: 60, by: 10) {
            let gx = left + Double(minute) / 60 * plotWidth
            svg += "<line x1=\"\(gx)\" y1=\"\(top)\" x2=\"\(gx)\" y2=\"\(top + plotHeight)\" class=\"grid\"/>"
            let label = minute == 60 ? "now" : "−\(60 - minute) min"
            svg += "<text x=\"\(gx)\" y=\"\(height - 6)\" text-anchor=\"middle\" class=\"axis\">\(label)</text>"
        }
        svg += "<text x=\"\(left - 6)\" y=\"\(top + 10)\" text-anchor=\"end\" class=\"axis backlog-label\">"
        svg += "\(Int(maxBacklog))</text>"
        svg += "<text x=\"\(left - 6)\" y=\"\(top + plotHeight)\" text-anchor=\"end\" class=\"axis\">0</text>"
        svg += "<text x=\"\(width - right + 6)\" y=\"\(top + 10)\" class=\"axis rate-label\">"
        svg += "\(Self.format(maxRate))/min</text>"
        if samples.isEmpty {
            svg += """
                <text x="\(left + plotWidth / 2)" y="\(top + plotHeight / 2)" text-anchor="middle" class="empty">\
                No samples in the last hour: the supervisor leader records one per sample interval.</text>
                """
        } else {
            let backlogPoints = samples.map {
                "\(Self.format(x($0))),\(Self.format(y(Double($0.backlog), maxBacklog)))"
            }
            let baseline = Self.format(top + plotHeight)
            let area =
                "\(Self.format(x(samples[0]))),\(baseline) " + backlogPoints.joined(separator: " ")
                + " \(Self.format(x(samples[samples.count - 1]))),\(baseline)"
            svg += "<polygon points=\"\(area)\" class=\"backlog\"/>"
            let ratePoints = samples.map { "\(Self.format(x($0))),\(Self.format(y($0.processedPerMinute, maxRate)))" }
            svg += "<polyline points=\"\(ratePoints.joined(separator: " "))\" class=\"rate\"/>"
        }
        svg += """
            <g class="legend"><rect x="\(left + 8)" y="\(top + 6)" width="10" height="10" class="backlog"/>\
            <text x="\(left + 22)" y="\(top + 15)" class="axis">backlog (left)</text>\
            <line x1="\(left + 120)" y1="\(top + 11)" x2="\(left + 134)" y2="\(top + 11)" class="rate"/>\
            <text x="\(left + 138)" y="\(top + 15)" class="axis">processed per minute (right)</text></g></svg>
            """
        return svg
    }

    static func format(_ value: Double) -> String {
        value == value.rounded() ? String(Int(value)) : String(format: "%.1f", value)
    }
}
