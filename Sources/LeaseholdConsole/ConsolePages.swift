import Foundation
import HTTPTypes
import Hummingbird
import LeaseholdDomain
import Logging

/// What every console page shares: the response shapes (HTML with the console's security
/// headers, redirects, cookies, the problem page), the session read from the cookie, and the two
/// guards every route goes through (``page(_:_:)`` for a page behind the login, ``withForm(_:action:_:)``
/// for a form post with its CSRF check).
struct ConsolePages: Sendable {
    let configuration: ConsoleConfiguration
    let signer: ConsoleSigner
    let renderer: ConsoleRenderer
    let logger: Logger

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
                "Refused",
                "This console runs read-only (--read-only): replay, purge, pause, resume and reveal are off.",
                status: .forbidden,
                viewer: viewer)
        }
        do {
            return try await body(form, session)
        } catch {
            logger.error("console action failed", metadata: ["path": "\(request.uri.path)", "error": "\(error)"])
            return problem("Something failed", "\(error)", status: .internalServerError, viewer: viewer)
        }
    }

    /// A value for a URL path component (a message key, a payment id).
    static func pathComponent(_ text: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~:")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? ""
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

    static func notificationRows(_ log: [PaymentLedger.LogEntry]) -> [[String: Any]] {
        log.map { entry in
            [
                "receivedAt": ConsoleRenderer.time(entry.receivedAt), "event": entry.event, "objectID": entry.objectID,
                "attempt": entry.attempt, "status": entry.status, "error": entry.error ?? "",
            ]
        }
    }
}
