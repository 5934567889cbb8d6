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
///
/// The HMAC (RFC 2104) is computed from SHA-256 states that have already absorbed the key's inner
/// and outer pads, made once here: `HMAC<SHA256>` hashes both pads again for every value, which
/// made the check a visible share of every authenticated request. The codes are the same (the tests compare them with `HMAC<SHA256>`).
struct SecretMatcher: Sendable {
    /// SHA-256 after `key ⊕ ipad`, and after `key ⊕ opad`.
    private let inner: SHA256
    private let outer: SHA256
    private let expected: SHA256.Digest?

    init(secret: String) {
        self.init(secret: secret, key: SymmetricKey(size: .bits256))
    }

    /// With a given key, for the tests.
    init(secret: String, key: SymmetricKey) {
        // A key of up to one SHA-256 block (64 bytes) is padded with zeros to the block size.
        var block = key.withUnsafeBytes { Array($0) }
        precondition(block.count <= 64, "an HMAC key longer than the hash block would be hashed first")
        block += Array(repeating: 0, count: 64 - block.count)
        var inner = SHA256()
        inner.update(data: block.map { $0 ^ 0x36 })
        var outer = SHA256()
        outer.update(data: block.map { $0 ^ 0x5C })
        self.inner = inner
        self.outer = outer
        self.expected = secret.isEmpty ? nil : Self.code(secret.utf8, inner: inner, outer: outer)
    }

    /// HMAC-SHA256 of `bytes` under the matcher's key.
    func code(_ bytes: some Collection<UInt8>) -> SHA256.Digest {
        Self.code(bytes, inner: inner, outer: outer)
    }

    private static func code(_ bytes: some Collection<UInt8>, inner: SHA256, outer: SHA256) -> SHA256.Digest {
        var inner = inner
        if bytes.withContiguousStorageIfAvailable({ inner.update(bufferPointer: UnsafeRawBufferPointer($0)) }) == nil {
            inner.update(data: Array(bytes))
        }
        var outer = outer
        inner.finalize().withUnsafeBytes { outer.update(bufferPointer: $0) }
        return outer.finalize()
    }

    /// Whether `presented` is exactly the configured secret.
    func matches(_ presented: some StringProtocol) -> Bool {
        guard let expected else { return false }
        // `==` on digests is swift-crypto's constant-time comparison.
        return code(presented.utf8) == expected
    }
}
