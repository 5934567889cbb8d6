import Foundation
import HTTPTypes
import Hummingbird
import LeaseholdDomain
import LeaseholdPostgres
import LeaseholdQueue
import LeaseholdRedis
import LeaseholdWire
import Logging

/// `/dead-letters`, `/dead-letters/<id>` and the two actions, `POST /dead-letters/replay` and
/// `POST /dead-letters/purge`: the first post shows what would change (a dry run), the second
/// (`confirm=yes`) does it and records who and when in `console_actions`.
///
/// A letter's payload is shown through the configured ``PayloadRedactor``; `POST
/// /dead-letters/<id>/reveal` (with an optional `reason`) answers that letter's page with the
/// payload as it is, once, and records who, when, which letter and why in `console_actions`.
struct DeadLettersController: Sendable {
    let pages: ConsolePages
    let redis: RedisClient
    let postgres: PostgresClient

    var configuration: ConsoleConfiguration { pages.configuration }
    var logger: Logger { pages.logger }

    func register(with router: Router<BasicRequestContext>) {
        router.get("dead-letters") { request, _ in
            await pages.page(request) { viewer in try await deadLetters(request, viewer) }
        }
        router.get("dead-letters/:id") { request, context in
            let id = context.parameters.get("id", as: Int64.self)
            return await pages.page(request) { viewer in try await deadLetter(id, viewer) }
        }
        router.post("dead-letters/:id/reveal") { request, context in
            let id = context.parameters.get("id", as: Int64.self)
            return try await pages.withForm(request, action: true) { form, session in
                try await reveal(id, form: form, session: session)
            }
        }
        router.post("dead-letters/replay") { request, _ in
            try await pages.withForm(request, action: true) { form, session in
                try await act(.replay, form: form, session: session)
            }
        }
        router.post("dead-letters/purge") { request, _ in
            try await pages.withForm(request, action: true) { form, session in
                try await act(.purge, form: form, session: session)
            }
        }
    }

    /// The list filter a form or query names (the fields of `leasehold dlq list`).
    static func filter(_ form: ConsoleForm) throws(BadFilter) -> DeadLetterQuery.Filter {
        let status = form["status"] ?? "dead"
        func id(_ field: String, _ what: String) throws(BadFilter) -> Int64? {
            guard let text = form[field]?.trimmingCharacters(in: .whitespaces), !text.isEmpty else { return nil }
            guard let value = Int64(text) else {
                throw BadFilter("\(field): \(text) is not a \(what) (a whole number)")
            }
            return value
        }
        let since: Date?
        do {
            since = try form["since"].map { try DeadLetterQuery.parseTime($0) }
        } catch {
            throw BadFilter("since: \(error)")
        }
        return DeadLetterQuery.Filter(
            kind: form["kind"], stream: form["stream"], since: since, errorContains: form["error"],
            status: status == "all" ? nil : status, userID: try id("user", "user id"),
            chatID: try id("chat", "chat id"))
    }

    /// A filter field that does not parse; the page says which and why.
    struct BadFilter: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }

    static let filterFields = ["kind", "stream", "since", "error", "status", "user", "chat"]

    func deadLetters(_ request: Request, _ viewer: ConsoleRenderer.Viewer) async throws -> Response {
        let form = ConsoleForm(request.uri.query ?? "")
        var notice: String?
        let filter: DeadLetterQuery.Filter
        do {
            filter = try Self.filter(form)
        } catch {
            return pages.problem("Bad filter", "\(error)", status: .badRequest, viewer: viewer)
        }
        if let done = form["done"].flatMap(Int64.init),
            let action = try await ConsoleAuditLog().find(done, postgres: postgres)
        {
            notice =
                "\(action.actor) \(action.action == "replay" ? "replayed" : "purged") \(action.deadLetterIDs.count) "
                + "dead letter\(action.deadLetterIDs.count == 1 ? "" : "s") at \(ConsoleRenderer.time(action.at))"
                + " (action \(action.id))."
        }
        let page = max(1, form["page"].flatMap(Int.init) ?? 1)
        let size = configuration.pageSize
        let query = DeadLetterQuery()
        let total = try await query.count(filter, postgres: postgres)
        let letters = try await query.list(filter, limit: size, offset: (page - 1) * size, postgres: postgres)
        let kept = Self.filterFields.compactMap { name in form[name].map { (name, $0) } }
        func link(_ page: Int) -> String { "/dead-letters?" + ConsoleForm.encode(kept + [("page", String(page))]) }
        let status = form["status"] ?? "dead"
        let context: [String: Any] = [
            "notice": notice as Any, "kind": form["kind"] ?? "", "stream": form["stream"] ?? "",
            "since": form["since"] ?? "", "error": form["error"] ?? "", "user": form["user"] ?? "",
            "chat": form["chat"] ?? "",
            "statuses": ["dead", "replayed", "purged", "all"].map { ["value": $0, "selected": $0 == status] },
            "total": total,
            // `false`, not "", for what is not shown: the template's sections render for any string.
            "pageInfo": letters.isEmpty ? false : "\((page - 1) * size + 1)–\((page - 1) * size + letters.count)",
            "letters": letters.map { letter -> [String: Any] in
                [
                    "id": letter.id, "deadLetteredAt": ConsoleRenderer.time(letter.deadLetteredAt),
                    "kind": letter.kind, "messageKey": letter.messageKey, "attempts": letter.attempts,
                    "status": letter.status, "lastError": String(letter.lastError.prefix(160)),
                    "userID": letter.userID as Any,
                ]
            },
            "canAct": !configuration.readOnly,
            "filterFields": kept.map { ["name": $0.0, "value": $0.1] },
            "previous": page > 1 ? link(page - 1) : false, "next": Int64(page * size) < total ? link(page + 1) : false,
        ]
        return ConsolePages.html(pages.renderer.page("dead-letters", title: "Dead letters", viewer: viewer, context))
    }

    /// Who revealed a letter's payload, and the `console_actions` row that says so.
    struct Revealed {
        var actor: String
        var actionID: Int64
    }

    /// One letter's page; its payload redacted unless `revealed`.
    func deadLetter(_ id: Int64?, _ viewer: ConsoleRenderer.Viewer, revealed: Revealed? = nil) async throws
        -> Response
    {
        guard let id, let letter = try await DeadLetterQuery().show(id, postgres: postgres) else {
            return pages.problem("Not found", "No dead letter with this ID.", status: .notFound, viewer: viewer)
        }
        let redactor = configuration.redactor
        let asItIs = revealed != nil || !redactor.isOn
        var context: [String: Any] = [
            "id": letter.id, "messageKey": letter.messageKey,
            "messageKeyPath": ConsolePages.pathComponent(letter.messageKey),
            "kind": letter.kind, "stream": letter.stream, "entryID": letter.entryID, "status": letter.status,
            "userID": letter.userID as Any, "chatID": letter.chatID as Any,
            "replayEntryID": letter.replayEntryID as Any, "attempts": letter.attempts,
            "firstSeenAt": ConsoleRenderer.time(letter.firstSeenAt),
            "deadLetteredAt": ConsoleRenderer.time(letter.deadLetteredAt), "lastError": letter.lastError,
            "canReplay": !configuration.readOnly && letter.status == "dead",
            "pretty": asItIs
                ? DeadLetterQuery.prettyPrinted(letter.payload) : redactor.pretty(letter.payload ?? ""),
            "raw": asItIs ? letter.payload ?? "" : redactor.compact(letter.payload ?? ""),
            // `false`, not "", for what is not shown: the template's sections render for any string.
            "redacted": !asItIs, "redactedFields": redactor.fields.joined(separator: ", "),
            "canReveal": !configuration.readOnly,
            "revealedBy": revealed.map { $0.actor as Any } ?? false, "revealAction": revealed?.actionID as Any,
            "history": (letter.errorHistory ?? []).map { failure -> [String: Any] in
                [
                    "attempt": failure.attempt, "at": AttemptFailure.format(failure.at),
                    "worker": failure.worker ?? "?", "error": failure.error,
                ]
            },
            "actions": ConsolePages.actionRows(
                try await ConsoleAuditLog().actions(onDeadLetter: id, postgres: postgres)),
        ]
        if let payment = Self.paymentID(ofKey: letter.messageKey) {
            let log = try await PaymentLedger().log(of: payment, on: postgres)
            context["paymentID"] = payment
            context["paymentPath"] = ConsolePages.pathComponent(payment)
            context["hasWebhookLog"] = true
            context["notifications"] = ConsolePages.notificationRows(log)
        }
        return ConsolePages.html(
            pages.renderer.page("dead-letter", title: "Dead letter \(id)", viewer: viewer, context))
    }

    /// `POST /dead-letters/<id>/reveal`: records the reveal, then answers the letter's page with
    /// its payload as it is (a reload shows it redacted again).
    func reveal(_ id: Int64?, form: ConsoleForm, session: ConsoleSession) async throws -> Response {
        let viewer = pages.viewer(session)
        guard let id, try await DeadLetterQuery().letters(ids: [id], postgres: postgres).first != nil else {
            return pages.problem("Not found", "No dead letter with this ID.", status: .notFound, viewer: viewer)
        }
        let reason = String((form["reason"] ?? "").trimmingCharacters(in: .whitespacesAndNewlines).prefix(500))
        let recorded = try await ConsoleAuditLog().record(
            actor: session.name, action: "reveal", scope: "letter \(id)" + (reason.isEmpty ? "" : ": \(reason)"),
            deadLetterIDs: [id], postgres: postgres)
        logger.notice(
            "console reveal",
            metadata: ["actor": "\(session.name)", "dead_letter_id": "\(id)", "action_id": "\(recorded)"])
        return try await deadLetter(id, viewer, revealed: Revealed(actor: session.name, actionID: recorded))
    }

    /// The YooKassa payment id a dead letter's key names (`yk:<event>:<payment id>`), if any.
    static func paymentID(ofKey key: String) -> String? {
        let parts = key.split(separator: ":", maxSplits: 2)
        guard parts.count == 3, parts[0] == "yk" else { return nil }
        return String(parts[2])
    }

    // MARK: Actions

    enum Action: String {
        case replay, purge
    }

    func act(_ action: Action, form: ConsoleForm, session: ConsoleSession) async throws -> Response {
        let viewer = pages.viewer(session)
        let selected = form["scope"] != "all"
        let ids = form.all("id").compactMap { Int64($0) }
        if selected && ids.isEmpty {
            return pages.problem(
                "Nothing selected", "Tick at least one dead letter.", status: .badRequest, viewer: viewer)
        }
        let filter: DeadLetterQuery.Filter
        do {
            filter = try Self.filter(form)
        } catch {
            return pages.problem("Bad filter", "\(error)", status: .badRequest, viewer: viewer)
        }
        let query = DeadLetterQuery()
        let candidates: [DeadLetterQuery.Letter]
        switch action {
        case .replay:
            candidates = try await query.replay(
                ids: selected ? ids : nil, filter: filter, dryRun: true, postgres: postgres, redis: redis)
        case .purge:
            candidates =
                selected
                ? try await query.letters(ids: ids, postgres: postgres).filter { $0.status != "purged" }
                : try await query.list(filter, limit: 1_000_000, postgres: postgres).filter { $0.status != "purged" }
        }
        let scope =
            selected
            ? "selected: \(ids.map(String.init).joined(separator: ", "))"
            : "all matching "
                + (Self.filterFields.compactMap { name in form[name].map { "\(name)=\($0)" } }.joined(separator: " ")
                    .nonEmpty ?? "status=dead")
        let fields: [(String, String)] =
            [("scope", selected ? "selected" : "all")] + (selected ? ids.map { ("id", String($0)) } : [])
            + Self.filterFields.compactMap { name in form[name].map { (name, $0) } }
        guard form["confirm"] == "yes" else {
            let context: [String: Any] = [
                "verb": action == .replay ? "Replay" : "Purge", "count": candidates.count,
                "one": candidates.count == 1, "hasAny": !candidates.isEmpty,
                "description": action == .replay
                    ? "Each goes back to its stream as a first attempt under the same key (the inbox makes a replay "
                        + "of something already processed a no-op); only letters still dead are sent. Scope: \(scope)."
                    : "Each is marked purged; the rows stay for the audit trail. Scope: \(scope).",
                "letters": candidates.prefix(50).map { letter -> [String: Any] in
                    [
                        "id": letter.id, "kind": letter.kind, "messageKey": letter.messageKey,
                        "lastError": String(letter.lastError.prefix(120)),
                    ]
                },
                "more": candidates.count > 50 ? candidates.count - 50 : 0,
                "action": "/dead-letters/\(action.rawValue)", "buttonClass": action == .replay ? "" : "danger",
                "fields": fields.map { ["name": $0.0, "value": $0.1] },
            ]
            return ConsolePages.html(pages.renderer.page("confirm", title: "Confirm", viewer: viewer, context))
        }
        let changed: [Int64]
        switch action {
        case .replay:
            changed = try await query.replay(
                ids: selected ? ids : nil, filter: filter, dryRun: false, postgres: postgres, redis: redis
            ).map(\.id)
        case .purge:
            let targets = candidates.map(\.id)
            _ = try await query.purge(ids: targets, filter: filter, postgres: postgres)
            changed = targets
        }
        let recorded = try await ConsoleAuditLog().record(
            actor: session.name, action: action.rawValue, scope: scope, deadLetterIDs: changed, postgres: postgres)
        logger.notice(
            "console \(action.rawValue)",
            metadata: [
                "actor": "\(session.name)", "count": "\(changed.count)", "action_id": "\(recorded)",
                "dead_letter_ids": "\(changed.prefix(50).map(String.init).joined(separator: ","))",
            ])
        return ConsolePages.redirect("/dead-letters?done=\(recorded)")
    }
}

extension String {
    fileprivate var nonEmpty: String? { isEmpty ? nil : self }
}
