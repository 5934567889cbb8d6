import Foundation
import HTTPTypes
import Hummingbird
import LeaseholdDomain
import LeaseholdPostgres
import LeaseholdQueue
import LeaseholdRedis
import Logging

/// The ops console's HTTP application (`leasehold console`): server-rendered pages at stable paths,
/// every page but `/login` and the health checks behind a login.
///
/// | Path | Page |
/// | --- | --- |
/// | `/` | overview: streams, consumers, retries, dead letters by kind and error, leader, outbox, chart |
/// | `/dead-letters` | the list, filtered like `leasehold dlq list` (`kind`, `stream`, `since`, `error`, `status`), paged (`page`) |
/// | `/dead-letters/<id>` | one letter: payload pretty and raw, every attempt's error, webhook_log rows of a payment |
/// | `/payments/<id>`, `/payments?user=<id>` | what `leasehold payments show` prints; a user's payments |
/// | `/messages/<key>` | a message by inbox key (`api:<request_id>`, `tg:<update_id>`, `yk:…`) |
/// | `/login` | the login form |
///
/// Replay and purge are `POST /dead-letters/replay` and `POST /dead-letters/purge`: the first post
/// shows what would change (a dry run), the second (`confirm=yes`) does it and records who and
/// when in `console_actions`. Every form carries a CSRF token; a post without a session or with a
/// wrong token gets 403, as does any action in read-only mode.
public struct ConsoleApplication: Sendable {
    public let configuration: ConsoleConfiguration
    let redis: RedisClient
    let postgres: PostgresClient
    let logger: Logger
    let signer: ConsoleSigner
    let renderer: ConsoleRenderer

    public init(
        configuration: ConsoleConfiguration, redis: RedisClient, postgres: PostgresClient, logger: Logger
    )
        throws
    {
        self.configuration = configuration
        self.redis = redis
        self.postgres = postgres
        self.logger = logger
        self.signer = ConsoleSigner(token: configuration.token)
        self.renderer = try ConsoleRenderer()
    }

    /// The Hummingbird application serving the console on the configured address.
    public func application(onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in })
        -> some ApplicationProtocol
    {
        Application(
            router: router(),
            configuration: ApplicationConfiguration(
                address: .hostname(configuration.host, port: configuration.port), serverName: "leasehold-console"),
            onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? 0) },
            logger: logger)
    }

    func router() -> Router<BasicRequestContext> {
        let router = Router()
        let console = self
        router.get("healthz") { _, _ in "ok\n" }
        router.get("readyz") { _, _ -> String in
            guard (try? await console.redis.send("PING")) != nil,
                (try? await console.postgres.query("SELECT 1")) != nil
            else { throw HTTPError(.serviceUnavailable, message: "PostgreSQL or Redis does not answer") }
            return "ready\n"
        }
        router.get("login") { request, _ in console.loginPage(request) }
        router.post("login") { request, _ in try await console.login(request) }
        router.post("logout") { request, _ in
            try await console.withForm(request) { _, _ in
                var response = Self.redirect("/login")
                response.setCookie(console.cookie(ConsoleSession.cookieName, "", maxAge: 0, path: "/"))
                return response
            }
        }
        router.get("/") { request, _ in
            await console.page(request) { viewer in try await console.overview(viewer) }
        }
        router.get("lookup") { request, _ in console.lookup(request) }
        router.get("dead-letters") { request, _ in
            await console.page(request) { viewer in try await console.deadLetters(request, viewer) }
        }
        router.get("dead-letters/:id") { request, context in
            let id = context.parameters.get("id", as: Int64.self)
            return await console.page(request) { viewer in try await console.deadLetter(id, viewer) }
        }
        router.post("dead-letters/replay") { request, _ in
            try await console.withForm(request, action: true) { form, session in
                try await console.act(.replay, form: form, session: session)
            }
        }
        router.post("dead-letters/purge") { request, _ in
            try await console.withForm(request, action: true) { form, session in
                try await console.act(.purge, form: form, session: session)
            }
        }
        router.get("payments") { request, _ in
            await console.page(request) { viewer in try await console.payments(request, viewer) }
        }
        router.get("payments/:id") { request, context in
            let id = context.parameters.get("id").flatMap { $0.removingPercentEncoding } ?? ""
            return await console.page(request) { viewer in try await console.payment(id, viewer) }
        }
        router.get("messages/:key") { request, context in
            let key = context.parameters.get("key").flatMap { $0.removingPercentEncoding } ?? ""
            return await console.page(request) { viewer in try await console.message(key, viewer) }
        }
        return router
    }

    // MARK: Responses

    static func html(_ text: String, status: HTTPResponse.Status = .ok) -> Response {
        Response(
            status: status,
            headers: [
                .contentType: "text/html; charset=utf-8", .cacheControl: "no-store",
                .contentSecurityPolicy:
                    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'",
                HTTPField.Name("X-Content-Type-Options")!: "nosniff",
                HTTPField.Name("Referrer-Policy")!: "same-origin",
            ],
            body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    static func redirect(_ location: String) -> Response {
        Response(status: .seeOther, headers: [.location: location, .cacheControl: "no-store"])
    }

    func cookie(_ name: String, _ value: String, maxAge: Int, path: String) -> Cookie {
        Cookie(
            name: name, value: value, maxAge: maxAge, path: path, secure: configuration.secureCookies, httpOnly: true,
            sameSite: .strict)
    }

    func problem(_ heading: String, _ message: String, status: HTTPResponse.Status, viewer: ConsoleRenderer.Viewer?)
        -> Response
    {
        Self.html(
            renderer.page("problem", title: heading, viewer: viewer, ["heading": heading, "message": message]),
            status: status)
    }

    func session(_ request: Request) -> ConsoleSession? {
        request.cookies[ConsoleSession.cookieName].flatMap { signer.session(fromCookie: $0.value) }
    }

    func viewer(_ session: ConsoleSession) -> ConsoleRenderer.Viewer {
        .init(name: session.name, csrf: signer.csrfToken(for: session), readOnly: configuration.readOnly)
    }

    /// A page behind the login: without a session, a redirect to `/login`; a failure is shown as
    /// a page saying what failed.
    func page(_ request: Request, _ body: (ConsoleRenderer.Viewer) async throws -> Response) async -> Response {
        guard let session = session(request) else {
            let next = request.uri.path + (request.uri.query.map { "?\($0)" } ?? "")
            return Self.redirect("/login?" + ConsoleForm.encode([("next", next)]))
        }
        let viewer = viewer(session)
        do {
            return try await body(viewer)
        } catch {
            logger.error("console page failed", metadata: ["path": "\(request.uri.path)", "error": "\(error)"])
            return problem("Something failed", "\(error)", status: .internalServerError, viewer: viewer)
        }
    }

    /// A form post: refused (403) without a session or with a wrong CSRF token, and for actions in
    /// read-only mode.
    func withForm(
        _ request: Request, action: Bool = false, _ body: (ConsoleForm, ConsoleSession) async throws -> Response
    ) async throws -> Response {
        guard let session = session(request) else {
            return problem("Refused", "Log in first.", status: .forbidden, viewer: nil)
        }
        let viewer = viewer(session)
        let buffer = try await request.body.collect(upTo: 1 << 20)
        let form = ConsoleForm(String(buffer: buffer))
        guard signer.matches(form["csrf"], viewer.csrf) else {
            logger.warning("console form refused: bad CSRF token", metadata: ["path": "\(request.uri.path)"])
            return problem(
                "Refused", "The form's CSRF token does not match your session: reload the page and try again.",
                status: .forbidden, viewer: viewer)
        }
        if action && configuration.readOnly {
            return problem(
                "Refused", "This console runs read-only (--read-only): replay and purge are off.", status: .forbidden,
                viewer: viewer)
        }
        do {
            return try await body(form, session)
        } catch {
            logger.error("console action failed", metadata: ["path": "\(request.uri.path)", "error": "\(error)"])
            return problem("Something failed", "\(error)", status: .internalServerError, viewer: viewer)
        }
    }

    // MARK: Login

    func loginPage(_ request: Request, problem: String? = nil, status: HTTPResponse.Status = .ok) -> Response {
        if problem == nil, session(request) != nil { return Self.redirect("/") }
        let nonce = ConsoleSigner.newNonce()
        let next = request.uri.queryParameters.get("next") ?? ""
        var response = Self.html(
            renderer.page(
                "login", title: "Log in", viewer: nil,
                ["loginCSRF": signer.loginCSRFToken(nonce: nonce), "next": next, "problem": problem as Any]),
            status: status)
        response.setCookie(cookie(ConsoleSession.loginCookieName, nonce, maxAge: 1800, path: "/login"))
        return response
    }

    func login(_ request: Request) async throws -> Response {
        let form = ConsoleForm(String(buffer: try await request.body.collect(upTo: 1 << 16)))
        let nonce = request.cookies[ConsoleSession.loginCookieName]?.value ?? ""
        guard !nonce.isEmpty, signer.matches(form["csrf"], signer.loginCSRFToken(nonce: nonce)) else {
            return loginPage(request, problem: "The form expired: log in again.", status: .forbidden)
        }
        let name = (form["name"] ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        guard !name.isEmpty, name.count <= 64 else {
            return loginPage(request, problem: "Give your name (1 to 64 characters).", status: .badRequest)
        }
        guard signer.isToken(form["token"] ?? "") else {
            logger.warning("console login refused: wrong token", metadata: ["name": "\(name)"])
            return loginPage(request, problem: "Wrong token.", status: .unauthorized)
        }
        logger.info("console login", metadata: ["name": "\(name)"])
        let session = signer.newSession(name: name, lifetime: configuration.sessionLifetime)
        var next = form["next"] ?? "/"
        if !next.hasPrefix("/") || next.hasPrefix("//") || next.hasPrefix("/\\") { next = "/" }
        var response = Self.redirect(next)
        response.setCookie(
            cookie(
                ConsoleSession.cookieName, signer.cookieValue(session),
                maxAge: Int(configuration.sessionLifetime.components.seconds), path: "/"))
        response.setCookie(cookie(ConsoleSession.loginCookieName, "", maxAge: 0, path: "/login"))
        return response
    }

    // MARK: Pages

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
            "nextRetryDue": overview.nextRetryDue.map(ConsoleRenderer.time) as Any,
            "deadLetters": overview.status.deadLetters, "outboxPending": overview.outboxPending,
            "outboxFailed": overview.outboxFailed, "leader": overview.status.leader ?? "none",
            "chart": ConsoleChart.svg(overview.samples, now: now), "streams": streams,
            "deadByKind": groups(overview.deadByKind, field: "kind"),
            "deadByError": groups(overview.deadByError, field: "error"),
            "actions": Self.actionRows(overview.recentActions),
        ]
        return Self.html(renderer.page("overview", title: "Overview", viewer: viewer, context))
    }

    static func actionRows(_ actions: [ConsoleAuditLog.Action]) -> [[String: Any]] {
        actions.map { action in
            [
                "at": ConsoleRenderer.time(action.at), "actor": action.actor, "action": action.action,
                "scope": action.scope,
                "ids": action.deadLetterIDs.isEmpty
                    ? "none"
                    : action.deadLetterIDs.prefix(20).map(String.init).joined(separator: ", ")
                        + (action.deadLetterIDs.count > 20 ? ", …" : ""),
            ]
        }
    }

    /// The list filter a form or query names (the fields of `leasehold dlq list`).
    static func filter(_ form: ConsoleForm) throws -> DeadLetterQuery.Filter {
        let status = form["status"] ?? "dead"
        return DeadLetterQuery.Filter(
            kind: form["kind"], stream: form["stream"],
            since: try form["since"].map { try DeadLetterQuery.parseTime($0) },
            errorContains: form["error"], status: status == "all" ? nil : status)
    }

    static let filterFields = ["kind", "stream", "since", "error", "status"]

    func deadLetters(_ request: Request, _ viewer: ConsoleRenderer.Viewer) async throws -> Response {
        let form = ConsoleForm(request.uri.query ?? "")
        var notice: String?
        let filter: DeadLetterQuery.Filter
        do {
            filter = try Self.filter(form)
        } catch {
            return problem("Bad filter", "since: \(error)", status: .badRequest, viewer: viewer)
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
            "since": form["since"] ?? "", "error": form["error"] ?? "",
            "statuses": ["dead", "replayed", "purged", "all"].map { ["value": $0, "selected": $0 == status] },
            "total": total,
            // `false`, not "", for what is not shown: the template's sections render for any string.
            "pageInfo": letters.isEmpty ? false : "\((page - 1) * size + 1)–\((page - 1) * size + letters.count)",
            "letters": letters.map { letter -> [String: Any] in
                [
                    "id": letter.id, "deadLetteredAt": ConsoleRenderer.time(letter.deadLetteredAt),
                    "kind": letter.kind, "messageKey": letter.messageKey, "attempts": letter.attempts,
                    "status": letter.status, "lastError": String(letter.lastError.prefix(160)),
                ]
            },
            "canAct": !configuration.readOnly,
            "filterFields": kept.map { ["name": $0.0, "value": $0.1] },
            "previous": page > 1 ? link(page - 1) : false, "next": Int64(page * size) < total ? link(page + 1) : false,
        ]
        return Self.html(renderer.page("dead-letters", title: "Dead letters", viewer: viewer, context))
    }

    /// The YooKassa payment id a dead letter's key names (`yk:<event>:<payment id>`), if any.
    static func paymentID(ofKey key: String) -> String? {
        let parts = key.split(separator: ":", maxSplits: 2)
        guard parts.count == 3, parts[0] == "yk" else { return nil }
        return String(parts[2])
    }

    static func pathComponent(_ text: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~:")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? ""
    }

    func deadLetter(_ id: Int64?, _ viewer: ConsoleRenderer.Viewer) async throws -> Response {
        guard let id, let letter = try await DeadLetterQuery().show(id, postgres: postgres) else {
            return problem("Not found", "No dead letter with this ID.", status: .notFound, viewer: viewer)
        }
        var context: [String: Any] = [
            "id": letter.id, "messageKey": letter.messageKey, "messageKeyPath": Self.pathComponent(letter.messageKey),
            "kind": letter.kind, "stream": letter.stream, "entryID": letter.entryID, "status": letter.status,
            "replayEntryID": letter.replayEntryID as Any, "attempts": letter.attempts,
            "firstSeenAt": ConsoleRenderer.time(letter.firstSeenAt),
            "deadLetteredAt": ConsoleRenderer.time(letter.deadLetteredAt), "lastError": letter.lastError,
            "canReplay": !configuration.readOnly && letter.status == "dead",
            "pretty": DeadLetterQuery.prettyPrinted(letter.payload), "raw": letter.payload ?? "",
            "history": (letter.errorHistory ?? []).map { failure -> [String: Any] in
                [
                    "attempt": failure.attempt, "at": AttemptFailure.format(failure.at),
                    "worker": failure.worker ?? "?", "error": failure.error,
                ]
            },
            "actions": Self.actionRows(try await ConsoleAuditLog().actions(onDeadLetter: id, postgres: postgres)),
        ]
        if let payment = Self.paymentID(ofKey: letter.messageKey) {
            let log = try await PaymentLedger().log(of: payment, on: postgres)
            context["paymentID"] = payment
            context["paymentPath"] = Self.pathComponent(payment)
            context["hasWebhookLog"] = true
            context["notifications"] = Self.notificationRows(log)
        }
        return Self.html(renderer.page("dead-letter", title: "Dead letter \(id)", viewer: viewer, context))
    }

    static func notificationRows(_ log: [PaymentLedger.LogEntry]) -> [[String: Any]] {
        log.map { entry in
            [
                "receivedAt": ConsoleRenderer.time(entry.receivedAt), "event": entry.event, "objectID": entry.objectID,
                "attempt": entry.attempt, "status": entry.status, "error": entry.error ?? "",
            ]
        }
    }

    // MARK: Actions

    enum Action: String {
        case replay, purge
    }

    func act(_ action: Action, form: ConsoleForm, session: ConsoleSession) async throws -> Response {
        let viewer = viewer(session)
        let selected = form["scope"] != "all"
        let ids = form.all("id").compactMap { Int64($0) }
        if selected && ids.isEmpty {
            return problem("Nothing selected", "Tick at least one dead letter.", status: .badRequest, viewer: viewer)
        }
        let filter: DeadLetterQuery.Filter
        do {
            filter = try Self.filter(form)
        } catch {
            return problem("Bad filter", "since: \(error)", status: .badRequest, viewer: viewer)
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
            return Self.html(renderer.page("confirm", title: "Confirm", viewer: viewer, context))
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
        return Self.redirect("/dead-letters?done=\(recorded)")
    }

    // MARK: Lookups

    func lookup(_ request: Request) -> Response {
        let query = ConsoleForm(request.uri.query ?? "")
        guard let text = query["q"]?.trimmingCharacters(in: .whitespaces), !text.isEmpty else {
            return Self.redirect("/")
        }
        switch query["by"] {
        case "user": return Self.redirect("/payments?" + ConsoleForm.encode([("user", text)]))
        case "message": return Self.redirect("/messages/" + Self.pathComponent(MessageLookup.key(for: text)))
        default: return Self.redirect("/payments/" + Self.pathComponent(text))
        }
    }

    func payments(_ request: Request, _ viewer: ConsoleRenderer.Viewer) async throws -> Response {
        guard let user = request.uri.queryParameters.get("user").flatMap({ Int64($0) }) else {
            return problem("Bad user id", "user must be a number.", status: .badRequest, viewer: viewer)
        }
        let ids = try await PaymentReport.paymentIDs(ofUser: user, on: postgres)
        let context: [String: Any] = [
            "userID": user, "ids": ids.map { ["id": $0, "path": Self.pathComponent($0)] },
        ]
        return Self.html(renderer.page("payments", title: "Payments of user \(user)", viewer: viewer, context))
    }

    func payment(_ id: String, _ viewer: ConsoleRenderer.Viewer) async throws -> Response {
        guard let report = try await postgres.withConnection({ try await PaymentReport.load(id, on: $0) }) else {
            return problem("Not found", "No payment \(id).", status: .notFound, viewer: viewer)
        }
        let p = report.payment
        let context: [String: Any] = [
            "providerPaymentID": p.providerPaymentID, "status": p.status,
            "cancellationReason": p.cancellationReason as Any, "amount": p.amount, "currency": p.currency,
            "refundedAmount": p.refundedAmount, "userID": p.userID, "plan": p.plan,
            "subscription": report.subscription.map { s -> [String: Any] in
                [
                    "id": s.id, "status": s.status, "plan": s.plan,
                    "until": ConsoleRenderer.time(s.currentPeriodEnd),
                ]
            } as Any,
            "notifications": Self.notificationRows(report.notifications),
        ]
        return Self.html(renderer.page("payment", title: "Payment \(id)", viewer: viewer, context))
    }

    func message(_ input: String, _ viewer: ConsoleRenderer.Viewer) async throws -> Response {
        let key = MessageLookup.key(for: input)
        if key != input { return Self.redirect("/messages/" + Self.pathComponent(key)) }
        let found = try await MessageLookup.load(key, postgres: postgres)
        let context: [String: Any] = [
            "key": key,
            "inbox": found.inbox.map { row -> [String: Any] in
                [
                    "processedAt": ConsoleRenderer.time(row.processedAt), "kind": row.kind, "outcome": row.outcome,
                    "stream": row.stream ?? "", "entryID": row.entryID ?? "",
                    "interviewID": row.interviewID.map(String.init) ?? "–",
                ]
            } as Any,
            "outbox": found.outbox.map { row -> [String: Any] in
                [
                    "id": row.id, "chatID": row.chatID.map(String.init) ?? "", "status": row.status,
                    "attempts": row.attempts, "sentAt": ConsoleRenderer.time(row.sentAt),
                    "telegramMessageID": row.telegramMessageID.map(String.init) ?? "",
                    "lastError": row.lastError ?? "", "text": row.text ?? "",
                ]
            },
            "deadLetters": found.deadLetterIDs.map(String.init),
        ]
        return Self.html(renderer.page("message", title: "Message \(key)", viewer: viewer, context))
    }
}

extension String {
    fileprivate var nonEmpty: String? { isEmpty ? nil : self }
}
