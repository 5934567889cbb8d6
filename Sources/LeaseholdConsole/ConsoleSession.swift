import Crypto
import Foundation

/// Stateless console sessions: a cookie holding the operator's name, an expiry and a random
/// nonce, signed with HMAC-SHA256 under a key derived from the console token; the CSRF token of
/// every form is an HMAC of the session's nonce. Nothing is stored server-side, so any replica
/// accepts any other's session.
public struct ConsoleSession: Sendable, Equatable {
    /// Who logged in (shown in the audit trail).
    public var name: String
    public var expires: Date
    public var nonce: String

    /// The session cookie's name.
    public static let cookieName = "lh_console"
    /// The cookie holding the login form's nonce (its CSRF token is derived from it).
    public static let loginCookieName = "lh_console_login"
}

/// Signs and checks ``ConsoleSession`` cookies and CSRF tokens.
public struct ConsoleSigner: Sendable {
    private let key: SymmetricKey
    private let tokenCode: HashedAuthenticationCode<SHA256>

    public init(token: String) {
        key = SymmetricKey(data: SHA256.hash(data: Data("leasehold-console-session|\(token)".utf8)))
        tokenCode = HMAC<SHA256>.authenticationCode(for: Data("token|\(token)".utf8), using: key)
    }

    private static func mac(_ key: SymmetricKey, _ text: String) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: Data(text.utf8), using: key))
    }

    private static func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

    /// Whether two strings are equal, in time independent of where they differ: each is reduced
    /// to its HMAC under the session key and the codes are compared by swift-crypto
    /// (`isValidAuthenticationCode`, constant time), as ingress compares its secrets.
    func constantTimeEqual(_ candidate: String, _ expected: String) -> Bool {
        HMAC<SHA256>.isValidAuthenticationCode(
            HMAC<SHA256>.authenticationCode(for: Data("compare|\(expected)".utf8), using: key),
            authenticating: Data("compare|\(candidate)".utf8), using: key)
    }

    /// Whether `candidate` is the console token (compared as HMACs, in constant time).
    public func isToken(_ candidate: String) -> Bool {
        HMAC<SHA256>.isValidAuthenticationCode(tokenCode, authenticating: Data("token|\(candidate)".utf8), using: key)
    }

    /// A random 128-bit nonce, hex.
    public static func newNonce() -> String {
        hex((0..<16).map { _ in UInt8.random(in: .min ... .max) })
    }

    /// A new session for `name`, valid for `lifetime`.
    public func newSession(name: String, lifetime: Duration, now: Date = Date()) -> ConsoleSession {
        ConsoleSession(
            name: name, expires: now.addingTimeInterval(Double(lifetime.components.seconds)), nonce: Self.newNonce())
    }

    /// The cookie value: `<expiry>.<nonce>.<name, base64url>.<hmac>`.
    public func cookieValue(_ session: ConsoleSession) -> String {
        let name = Data(session.name.utf8).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
        let body = "\(Int64(session.expires.timeIntervalSince1970)).\(session.nonce).\(name)"
        return "\(body).\(Self.hex(Self.mac(key, "session|\(body)")))"
    }

    /// The session a cookie value carries, `nil` when it is forged, malformed or expired.
    public func session(fromCookie value: String, now: Date = Date()) -> ConsoleSession? {
        let parts = value.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 4, let expiry = Int64(parts[0]) else { return nil }
        let body = parts[0..<3].joined(separator: ".")
        guard constantTimeEqual(parts[3], Self.hex(Self.mac(key, "session|\(body)"))) else { return nil }
        let expires = Date(timeIntervalSince1970: Double(expiry))
        guard expires > now else { return nil }
        var base64 = parts[2].replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        base64 += String(repeating: "=", count: (4 - base64.count % 4) % 4)
        guard let data = Data(base64Encoded: base64) else { return nil }
        return ConsoleSession(name: String(decoding: data, as: UTF8.self), expires: expires, nonce: parts[1])
    }

    /// The CSRF token of every form a session's pages carry.
    public func csrfToken(for session: ConsoleSession) -> String {
        Self.hex(Self.mac(key, "csrf|\(session.nonce)"))
    }

    /// The login form's CSRF token, bound to the nonce of its ``ConsoleSession/loginCookieName`` cookie.
    public func loginCSRFToken(nonce: String) -> String {
        Self.hex(Self.mac(key, "login|\(nonce)"))
    }

    /// Whether `candidate` equals `expected`, in constant time.
    public func matches(_ candidate: String?, _ expected: String) -> Bool {
        guard let candidate else { return false }
        return constantTimeEqual(candidate, expected)
    }
}
