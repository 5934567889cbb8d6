import Foundation

/// The latency-over-time plot of a load test as a self-contained SVG document (written by hand:
/// two panels of polylines need no plotting library).
///
/// Top panel: HTTP and end-to-end latency, p50 and p99 per second, on a logarithmic axis (the two
/// differ by orders of magnitude). Bottom panel: accepted and committed requests per second.
/// Every series is a `<polyline>` whose `id` names it (`http-p50`, `http-p99`, `e2e-p50`,
/// `e2e-p99`, `accepted-rate`, `committed-rate`), so scripts and tests can find them.
public enum LatencyPlot {
    /// One drawn series.
    struct Series {
        var id: String
        var label: String
        var color: String
        var dashed: Bool
        var points: [(x: Double, y: Double)]
    }

    static let width = 1000.0
    static let height = 690.0
    static let left = 80.0
    static let right = 820.0
    static let latencyTop = 96.0
    static let latencyBottom = 386.0
    static let rateTop = 450.0
    static let rateBottom = 640.0

    /// The SVG document for `timeline`, titled `title` with `subtitles` (one line each) beneath it.
    public static func svg(_ timeline: LoadTestTimeline, title: String, subtitles: [String]) -> String {
        let seconds = timeline.seconds
        let lastSecond = Double((seconds.last?.second ?? 0) + 1)
        func column(_ second: Int) -> Double { Double(second) + 0.5 }

        let latency = [
            Series(
                id: "http-p50", label: "HTTP p50", color: "#1f77b4", dashed: false,
                points: seconds.compactMap { s in s.httpP50.map { (column(s.second), $0) } }),
            Series(
                id: "http-p99", label: "HTTP p99", color: "#1f77b4", dashed: true,
                points: seconds.compactMap { s in s.httpP99.map { (column(s.second), $0) } }),
            Series(
                id: "e2e-p50", label: "end to end p50", color: "#d62728", dashed: false,
                points: seconds.compactMap { s in s.endToEndP50.map { (column(s.second), $0) } }),
            Series(
                id: "e2e-p99", label: "end to end p99", color: "#d62728", dashed: true,
                points: seconds.compactMap { s in s.endToEndP99.map { (column(s.second), $0) } }),
        ]
        let rates = [
            Series(
                id: "accepted-rate", label: "accepted/s", color: "#2ca02c", dashed: false,
                points: seconds.map { (column($0.second), Double($0.accepted)) }),
            Series(
                id: "committed-rate", label: "committed/s", color: "#9467bd", dashed: false,
                points: seconds.map { (column($0.second), Double($0.committed)) }),
        ]

        // Axes: latency on log10 between whole decades, rates linear from zero.
        let latencyValues = latency.flatMap { $0.points.map(\.y) }.filter { $0 > 0 }
        let lowDecade = floor(log10(latencyValues.min() ?? 1))
        let highDecade = max(lowDecade + 1, ceil(log10(latencyValues.max() ?? 10)))
        let rateMax = niceCeiling(max(1, rates.flatMap { $0.points.map(\.y) }.max() ?? 1))

        func x(_ value: Double) -> Double { left + (right - left) * value / lastSecond }
        func latencyY(_ value: Double) -> Double {
            let position = (log10(max(value, pow(10, lowDecade))) - lowDecade) / (highDecade - lowDecade)
            return latencyBottom - (latencyBottom - latencyTop) * position
        }
        func rateY(_ value: Double) -> Double { rateBottom - (rateBottom - rateTop) * value / rateMax }

        var svg: [String] = [
            #"<?xml version="1.0" encoding="UTF-8"?>"#,
            #"<svg xmlns="http://www.w3.org/2000/svg" width="\#(Int(width))" height="\#(Int(height))" "#
                + #"viewBox="0 0 \#(Int(width)) \#(Int(height))" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="12">"#,
            #"<rect width="100%" height="100%" fill="white"/>"#,
            #"<text x="\#(left)" y="26" font-size="17" font-weight="bold">\#(escape(title))</text>"#,
        ]
        for (line, subtitle) in subtitles.enumerated() {
            svg.append(#"<text x="\#(left)" y="\#(48 + 18 * line)" fill="dimgray">\#(escape(subtitle))</text>"#)
        }

        // Latency panel.
        svg.append(#"<g id="latency-panel">"#)
        svg.append(
            #"<text x="\#(left)" y="\#(latencyTop - 10)" font-weight="bold">latency (ms, log scale) of the requests sent in each second</text>"#
        )
        var decade = lowDecade
        while decade <= highDecade {
            for factor in [1.0, 2.0, 5.0] {
                let value = pow(10, decade) * factor
                guard value <= pow(10, highDecade) * 1.0001 else { continue }
                let y = latencyY(value)
                let major = factor == 1
                svg.append(
                    #"<line x1="\#(left)" x2="\#(right)" y1="\#(fmt(y))" y2="\#(fmt(y))" stroke="\#(major ? "silver" : "whitesmoke")"/>"#
                )
                if major || highDecade - lowDecade <= 2 {
                    svg.append(#"<text x="\#(left - 6)" y="\#(fmt(y + 4))" text-anchor="end">\#(number(value))</text>"#)
                }
            }
            decade += 1
        }
        svg += axes(top: latencyTop, bottom: latencyBottom, lastSecond: lastSecond, x: x)
        for series in latency { svg += draw(series, x: x, y: latencyY) }
        svg += legend(latency, top: latencyTop)
        svg.append("</g>")

        // Throughput panel.
        svg.append(#"<g id="rate-panel">"#)
        svg.append(
            #"<text x="\#(left)" y="\#(rateTop - 10)" font-weight="bold">requests per second: accepted (by send time), committed (by COMMIT time)</text>"#
        )
        // 1 and 5 × 10ⁿ split into fifths, 2 × 10ⁿ into quarters: round tick values.
        let intervals = rateMax / pow(10, floor(log10(rateMax))) == 2 ? 4 : 5
        for step in 0...intervals {
            let value = rateMax * Double(step) / Double(intervals)
            let y = rateY(value)
            svg.append(#"<line x1="\#(left)" x2="\#(right)" y1="\#(fmt(y))" y2="\#(fmt(y))" stroke="gainsboro"/>"#)
            svg.append(#"<text x="\#(left - 6)" y="\#(fmt(y + 4))" text-anchor="end">\#(number(value))</text>"#)
        }
        svg += axes(top: rateTop, bottom: rateBottom, lastSecond: lastSecond, x: x)
        for series in rates { svg += draw(series, x: x, y: rateY) }
        svg += legend(rates, top: rateTop)
        svg.append(
            #"<text x="\#(fmt((left + right) / 2))" y="\#(rateBottom + 36)" text-anchor="middle">seconds since the first request</text>"#
        )
        svg.append("</g>")
        svg.append("</svg>")
        return svg.joined(separator: "\n") + "\n"
    }

    /// The frame and the time ticks of one panel.
    private static func axes(top: Double, bottom: Double, lastSecond: Double, x: (Double) -> Double) -> [String] {
        var lines = [
            #"<rect x="\#(left)" y="\#(top)" width="\#(right - left)" height="\#(bottom - top)" fill="none" stroke="gray"/>"#
        ]
        let step = max(1, niceCeiling(lastSecond / 10))
        var tick = 0.0
        while tick <= lastSecond + 0.0001 {
            let position = fmt(x(tick))
            lines.append(
                #"<line x1="\#(position)" x2="\#(position)" y1="\#(bottom)" y2="\#(bottom + 5)" stroke="gray"/>"#)
            lines.append(#"<text x="\#(position)" y="\#(bottom + 18)" text-anchor="middle">\#(number(tick))</text>"#)
            tick += step
        }
        return lines
    }

    private static func draw(_ series: Series, x: (Double) -> Double, y: (Double) -> Double) -> [String] {
        let points = series.points.map { "\(fmt(x($0.x))),\(fmt(y($0.y)))" }.joined(separator: " ")
        let dash = series.dashed ? #" stroke-dasharray="6 4""# : ""
        var lines = [
            #"<polyline id="\#(series.id)" class="series" fill="none" stroke="\#(series.color)" stroke-width="2"\#(dash) "#
                + #"points="\#(points)"><title>\#(escape(series.label))</title></polyline>"#
        ]
        // Markers make short runs (a few seconds) readable.
        if series.points.count <= 120 {
            lines.append(#"<g fill="\#(series.color)">"#)
            for point in series.points {
                lines.append(#"<circle cx="\#(fmt(x(point.x)))" cy="\#(fmt(y(point.y)))" r="2.5"/>"#)
            }
            lines.append("</g>")
        }
        return lines
    }

    private static func legend(_ series: [Series], top: Double) -> [String] {
        var lines: [String] = []
        for (row, item) in series.enumerated() {
            let y = top + 14 + Double(row) * 20
            let dash = item.dashed ? #" stroke-dasharray="6 4""# : ""
            lines.append(
                #"<line x1="\#(right + 16)" x2="\#(right + 46)" y1="\#(fmt(y))" y2="\#(fmt(y))" stroke="\#(item.color)" stroke-width="2"\#(dash)/>"#
            )
            lines.append(#"<text x="\#(right + 52)" y="\#(fmt(y + 4))">\#(escape(item.label))</text>"#)
        }
        return lines
    }

    /// 1, 2 or 5 × a power of ten, at least `value`.
    static func niceCeiling(_ value: Double) -> Double {
        guard value > 0 else { return 1 }
        let magnitude = pow(10, floor(log10(value)))
        for factor in [1.0, 2.0, 5.0, 10.0] where factor * magnitude >= value * 0.9999 {
            return factor * magnitude
        }
        return 10 * magnitude
    }

    private static func fmt(_ value: Double) -> String { String(format: "%.1f", value) }

    private static func number(_ value: Double) -> String {
        if value == value.rounded() { return String(Int(value)) }
        return String(format: value >= 0.1 ? "%.1f" : "%.2f", value)
    }

    /// Text content and attribute values, escaped for XML.
    static func escape(_ text: String) -> String {
        var escaped = ""
        for character in text {
            switch character {
            case "&": escaped += "&amp;"
            case "<": escaped += "&lt;"
            case ">": escaped += "&gt;"
            case "\"": escaped += "&quot;"
            default: escaped.append(character)
            }
        }
        return escaped
    }
}
