import Foundation
import HTTPTypes
import Hummingbird
import Logging

/// `/login` and `/logout`: the login form (with a nonce cookie for its CSRF token), the token check,
/// the signed session cookie.
struct SessionController: Sendable {
    let pages: ConsolePages

    var configuration: ConsoleConfiguration { pages.configuration }
    var logger: Logger { pages.logger }

    func register(with router: Router<BasicRequestContext>) {
        router.get("login") { request, _ in loginPage(request) }
        router.post("login") { request, _ in try await login(request) }
        router.post("logout") { request, _ in
            try await pages.withForm(request) { _, _ in
                var response = ConsolePages.redirect("/login")
                response.setCookie(pages.cookie(ConsoleSession.cookieName, "", maxAge: 0, path: "/"))
                return response
            }
        }
    }

    func loginPage(_ request: Request, problem: String? = nil, status: HTTPResponse.Status = .ok) -> Response {
        if problem == nil, pages.session(request) != nil { return ConsolePages.redirect("/") }
        let nonce = ConsoleSigner.newNonce()
        let next = request.uri.queryParameters.get("next") ?? ""
        var response = ConsolePages.html(
            pages.renderer.page(
                "login", title: "Log in", viewer: nil,
                ["loginCSRF": pages.signer.loginCSRFToken(nonce: nonce), "next": next, "problem": problem as Any]),
            status: status)
        response.setCookie(pages.cookie(ConsoleSession.loginCookieName, nonce, maxAge: 1800, path: "/login"))
        return response
    }

    func login(_ request: Request) async throws -> Response {
        let form = ConsoleForm(String(buffer: try await request.body.collect(upTo: 1 << 16)))
        let nonce = request.cookies[ConsoleSession.loginCookieName]?.value ?? ""
        guard !nonce.isEmpty, pages.signer.matches(form["csrf"], pages.signer.loginCSRFToken(nonce: nonce)) else {
            return loginPage(request, problem: "The form expired: log in again.", status: .forbidden)
        }
        let name = (form["name"] ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        guard !name.isEmpty, name.count <= 64 else {
            return loginPage(request, problem: "Give your name (1 to 64 characters).", status: .badRequest)
        }
        guard pages.signer.isToken(form["token"] ?? "") else {
            logger.warning("console login refused: wrong token", metadata: ["name": "\(name)"])
            return loginPage(request, problem: "Wrong token.", status: .unauthorized)
        }
        logger.info("console login", metadata: ["name": "\(name)"])
        let session = pages.signer.newSession(name: name, lifetime: configuration.sessionLifetime)
        var next = form["next"] ?? "/"
        if !next.hasPrefix("/") || next.hasPrefix("//") || next.hasPrefix("/\\") { next = "/" }
        var response = ConsolePages.redirect(next)
        response.setCookie(
            pages.cookie(
                ConsoleSession.cookieName, pages.signer.cookieValue(session),
                maxAge: Int(configuration.sessionLifetime.components.seconds), path: "/"))
        response.setCookie(pages.cookie(ConsoleSession.loginCookieName, "", maxAge: 0, path: "/login"))
        return response
    }
}
