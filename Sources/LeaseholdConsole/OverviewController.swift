import Foundation
import Hummingbird
import LeaseholdPostgres
import LeaseholdQueue
import LeaseholdRedis

/// `/`: the overview (streams and their consumers, retries, dead letters by kind and error, the
/// leader, the outbox, the throughput chart, recent actions).
struct OverviewController: Sendable {
    let pages: ConsolePages
    let redis: RedisClient
    let postgres: PostgresClient

    var configuration: ConsoleConfiguration { pages.configuration }

    func register(with router: Router<BasicRequestContext>) {
        router.get("/") { request, _ in
            await pages.page(request) { viewer in try await overview(viewer) }
        }
    }

    func overview(_ viewer: ConsoleRenderer.Viewer) async throws -> Response {
        let now = Date()
        let overview = try await ConsoleOverview.read(
            configuration: configuration, now: now, redis: redis, postgres: postgres)
        let streams: [[String: Any]] = overview.status.streams.map { stream in
            let consumers = overview.consumers[stream.stream] ?? []
            return [
                "stream": stream.stream, "length": stream.length, "pending": stream.pending,
                "oldestPending": stream.oldestPendingAgeSeconds.map(ConsoleRenderer.age(seconds:)) ?? "–",
                "undelivered": stream.undelivered.map(String.init) ?? "?", "consumerCount": consumers.count,
                "paused": stream.paused.map { "paused since \(ConsoleRenderer.time($0.at)) by \($0.by): \($0.reason)" }
                    as Any,
                "consumers": consumers.map { consumer -> [String: Any] in
                    [
                        "name": consumer.name, "pending": consumer.pending,
                        "idle": ConsoleRenderer.age(seconds: Double(consumer.idleMilliseconds) / 1000),
                    ]
                },
            ]
        }
        func groups(_ rows: [(value: String, count: Int64)], field: String) -> [[String: Any]] {
            rows.map { row in
                let value = field == "error" ? String(row.value.prefix(120)) : row.value
                return [
                    "value": value, "count": row.count,
                    "href": "/dead-letters?" + ConsoleForm.encode([(field, value)]),
                ]
            }
        }
        let context: [String: Any] = [
            "processedLastMinute": overview.processedLastMinute, "retryBacklog": overview.status.retryBacklog,
            "latency": overview.latencyLastMinute.map { latency in
                [
                    "p50": ConsoleRenderer.age(seconds: max(0, latency.p50)),
                    "p99": ConsoleRenderer.age(seconds: max(0, latency.p99)),
                    "p999": ConsoleRenderer.age(seconds: max(0, latency.p999)),
                ]
            } as Any,
            "nextRetryDue": overview.nextRetryDue.map(ConsoleRenderer.time) as Any,
            "deadLetters": overview.status.deadLetters, "outboxPending": overview.outboxPending,
            "outboxFailed": overview.outboxFailed, "leader": overview.status.leader ?? "none",
            "chart": ConsoleChart.svg(overview.samples, now: now), "streams": streams,
            "deadByKind": groups(overview.deadByKind, field: "kind"),
            "deadByError": groups(overview.deadByError, field: "error"),
            "actions": ConsolePages.actionRows(overview.recentActions),
            "canAct": !configuration.readOnly, "pauseTargets": ["all"] + RedisKeys.sources,
            "pausedSources": RedisKeys.sources.filter { source in
                overview.status.streams.contains {
                    $0.paused != nil && configuration.keys.streams(source).contains($0.stream)
                }
            },
        ]
        return ConsolePages.html(pages.renderer.page("overview", title: "Overview", viewer: viewer, context))
    }
}
