import Crypto
import Foundation

/// Checks a presented secret (the Telegram webhook secret, the API bearer token) against the
/// configured one without leaking, through timing, anything about it.
///
/// Both sides are reduced to HMAC-SHA256 under a key drawn at random when the matcher is built,
/// and the two 32-byte codes are compared in constant time. So every presented value, whatever
/// its length, costs the same work, and a match requires the whole value: a longer value that
/// starts with the secret, a prefix of it, or the secret with any byte changed has a different
/// code. The random key also means the timing of the comparison says nothing about how many
/// bytes of a guess were right, even in principle. An empty configured secret matches nothing.
struct SecretMatcher: Sendable {
    private let key: SymmetricKey
    private let expected: HashedAuthenticationCode<SHA256>?

    init(secret: String) {
        let key = SymmetricKey(size: .bits256)
        self.key = key
        self.expected = secret.isEmpty ? nil : HMAC<SHA256>.authenticationCode(for: Data(secret.utf8), using: key)
    }

    /// Whether `presented` is exactly the configured secret.
    func matches(_ presented: some StringProtocol) -> Bool {
        guard let expected else { return false }
        return HMAC<SHA256>.isValidAuthenticationCode(expected, authenticating: Data(presented.utf8), using: key)
    }
}
