import Foundation
import Hummingbird
import LeaseholdPostgres
import LeaseholdQueue
import LeaseholdRedis
import Logging

/// `POST /streams/pause` and `POST /streams/resume`, from the overview: the first post shows what
/// would happen (which sources, the backlog that will wait), the second (`confirm=yes`) does it
/// (``StreamPauseActions``, as `leasehold streams` does: the pause and its record in
/// `console_actions` with who, when and why). Refused in read-only mode, without a session, or with a wrong CSRF token.
struct StreamsController: Sendable {
    let pages: ConsolePages
    let redis: RedisClient
    let postgres: PostgresClient

    var configuration: ConsoleConfiguration { pages.configuration }

    func register(with router: Router<BasicRequestContext>) {
        router.post("streams/pause") { request, _ in
            try await pages.withForm(request, action: true) { form, session in
                try await change(pause: true, form: form, session: session)
            }
        }
        router.post("streams/resume") { request, _ in
            try await pages.withForm(request, action: true) { form, session in
                try await change(pause: false, form: form, session: session)
            }
        }
    }

    func change(pause: Bool, form: ConsoleForm, session: ConsoleSession) async throws -> Response {
        let viewer = pages.viewer(session)
        let pauses = StreamPauses(keys: configuration.keys)
        let target = form["target"] ?? ""
        guard let sources = pauses.sources(named: target) else {
            return pages.problem(
                "Not a stream", "\(target) is not a source, a stream, a kind or all.", status: .badRequest,
                viewer: viewer)
        }
        let reason = (form["reason"] ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        if pause && reason.isEmpty {
            return pages.problem(
                "A reason is needed", "Say why the stream is paused: everyone who looks sees it.",
                status: .badRequest, viewer: viewer)
        }
        let named = sources.joined(separator: ", ")
        guard form["confirm"] == "yes" else {
            var waiting: Int64 = 0
            for stream in configuration.keys.streams(sources) {
                waiting += try await redis.send("XLEN", stream).int ?? 0
            }
            let context: [String: Any] = [
                "verb": pause ? "Pause" : "Resume", "sources": named, "target": target,
                "reason": pause ? reason : false, "action": pause ? "/streams/pause" : "/streams/resume",
                "buttonClass": pause ? "danger" : "",
                "description": pause
                    ? "Workers will claim nothing more from \(named) (they finish what they hold); the supervisor "
                        + "will neither reclaim its entries nor retry onto it; ingress keeps accepting up to the "
                        + "high-water mark. \(waiting) entries are on its streams now. Reason: \(reason)."
                    : "Workers will read \(named) again, in order, from where they stopped: \(waiting) entries "
                        + "are on its streams now.",
            ]
            return ConsolePages.html(pages.renderer.page("stream-confirm", title: "Confirm", viewer: viewer, context))
        }
        let actions = StreamPauseActions(keys: configuration.keys)
        let recorded =
            pause
            ? try await actions.pause(sources, by: session.name, reason: reason, redis: redis, postgres: postgres)
            : try await actions.resume(sources, by: session.name, redis: redis, postgres: postgres).actionID
        pages.logger.notice(
            "console \(pause ? "pause" : "resume")",
            metadata: [
                "actor": "\(session.name)", "sources": "\(named)",
                "action_id": "\(recorded.map(String.init) ?? "none: nothing was paused")",
            ])
        return ConsolePages.redirect("/")
    }
}
