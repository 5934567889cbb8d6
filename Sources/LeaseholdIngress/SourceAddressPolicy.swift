/// Who may post YooKassa notifications: YooKassa sends no signature, so the source address is
/// the authentication (Runbooks/architecture.md, "Inputs").
///
/// The client address is the TCP peer — unless the peer is a configured trusted proxy, in which
/// case `X-Forwarded-For` is read **from the right**: each trusted proxy appends the address it
/// received from, so the right-most entry that is not itself a trusted proxy is the real client.
/// Entries further left were written by the client and prove nothing. A peer that is not a
/// trusted proxy gets no say: its `X-Forwarded-For` is ignored, so nobody can forge their way in.
public struct SourceAddressPolicy: Sendable, Equatable {
    /// YooKassa's published notification sources (yookassa.ru/developers/using-api/webhooks#ip).
    public static let yookassaRanges = [
        "185.71.76.0/27", "185.71.77.0/27", "77.75.153.0/25", "77.75.154.128/25", "77.75.156.11", "77.75.156.35",
        "2a02:5180::/32",
    ]

    /// Sources allowed to post (`LEASEHOLD_YOOKASSA_ALLOWED_CIDRS`; default ``yookassaRanges``).
    public var allowed: [CIDRBlock]
    /// Proxies whose `X-Forwarded-For` is believed (`LEASEHOLD_TRUSTED_PROXIES`; default none).
    public var trustedProxies: [CIDRBlock]

    public init(allowed: [CIDRBlock]? = nil, trustedProxies: [CIDRBlock] = []) {
        // The defaults are constants checked by a test; parsing them cannot fail.
        self.allowed = allowed ?? Self.yookassaRanges.map { try! CIDRBlock($0) }
        self.trustedProxies = trustedProxies
    }

    /// The verdict on one request.
    public enum Verdict: Sendable, Equatable {
        case allowed(client: String)
        case denied(reason: String)
    }

    /// Decides from the TCP peer's address (textual, as the socket reports it) and the
    /// `X-Forwarded-For` header values, in the order received.
    public func check(peer: String?, forwardedFor: [String]) -> Verdict {
        let client: (address: String, bytes: [UInt8])
        switch resolve(peer: peer, forwardedFor: forwardedFor) {
        case .success(let found): client = found
        case .failure(let denial): return .denied(reason: denial.reason)
        }
        guard allowed.contains(where: { $0.contains(client.bytes) }) else {
            return .denied(reason: "source address \(client.address) is not allowed to post YooKassa notifications")
        }
        return .allowed(client: client.address)
    }

    /// The client's address as ``check(peer:forwardedFor:)`` finds it (the peer, or the
    /// right-most `X-Forwarded-For` entry that is not a trusted proxy when the peer is one),
    /// whether or not it is allowed; `nil` when the peer is unknown or a believed entry is malformed.
    public func client(peer: String?, forwardedFor: [String]) -> String? {
        try? resolve(peer: peer, forwardedFor: forwardedFor).get().address
    }

    private struct Denial: Error {
        var reason: String
    }

    private func resolve(peer: String?, forwardedFor: [String]) -> Result<(address: String, bytes: [UInt8]), Denial> {
        guard let peer, let peerBytes = CIDRBlock.parseAddress(peer) else {
            return .failure(Denial(reason: "the source address is unknown"))
        }
        var client = peer
        var clientBytes = peerBytes
        if isTrustedProxy(peerBytes) {
            let hops = forwardedFor.flatMap { $0.split(separator: ",") }
                .map { String($0).trimmingBlanksAndPort() }
            for hop in hops.reversed() {
                guard let bytes = CIDRBlock.parseAddress(hop) else {
                    return .failure(Denial(reason: "malformed X-Forwarded-For entry \"\(hop.prefix(64))\""))
                }
                client = hop
                clientBytes = bytes
                if !isTrustedProxy(bytes) { break }
            }
        }
        return .success((client, clientBytes))
    }

    private func isTrustedProxy(_ address: [UInt8]) -> Bool {
        trustedProxies.contains { $0.contains(address) }
    }
}

extension String {
    /// `" 185.71.76.5 "` → `185.71.76.5`; `"[2a02:5180::1]:443"` → `2a02:5180::1`;
    /// `"185.71.76.5:1234"` → `185.71.76.5` (some proxies append the port).
    fileprivate func trimmingBlanksAndPort() -> String {
        var text = Substring(self)
        while text.first == " " || text.first == "\t" { text = text.dropFirst() }
        while text.last == " " || text.last == "\t" { text = text.dropLast() }
        if text.hasPrefix("["), let close = text.firstIndex(of: "]") {
            return String(text[text.index(after: text.startIndex)..<close])
        }
        if text.filter({ $0 == ":" }).count == 1, let colon = text.firstIndex(of: ":") {
            return String(text[..<colon])
        }
        return String(text)
    }
}
