#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// An IPv4 or IPv6 network, `185.71.76.0/27` or `2a02:5180::/32`; a bare address is a /32 or /128.
///
/// Addresses are parsed by the C library's `inet_pton`, not by hand. An IPv4-mapped IPv6 address
/// (`::ffff:185.71.76.5`, what a dual-stack listener reports for an IPv4 peer) is treated as the
/// IPv4 address it carries, so one allowlist entry covers both forms.
public struct CIDRBlock: Sendable, Hashable, CustomStringConvertible {
    /// 4 bytes (IPv4) or 16 bytes (IPv6), host bits cleared.
    public let network: [UInt8]
    public let prefixLength: Int
    /// The text it was parsed from.
    public let description: String

    /// Parses `address/prefix` or a bare address; the error names the offending text.
    public init(_ text: String) throws(CIDRBlockError) {
        let trimmed = text.trimmingBlanks()
        let parts = trimmed.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let address = Self.parseAddress(String(parts[0])) else {
            throw CIDRBlockError(text: text, reason: "not an IPv4 or IPv6 address")
        }
        let maximum = address.count * 8
        let length: Int
        if parts.count == 2 {
            guard let parsed = Int(parts[1]), (0...maximum).contains(parsed) else {
                throw CIDRBlockError(text: text, reason: "prefix length must be 0 to \(maximum)")
            }
            length = parsed
        } else {
            length = maximum
        }
        self.network = Self.mask(address, to: length)
        self.prefixLength = length
        self.description = trimmed
    }

    /// Whether `address` (as bytes from ``parseAddress(_:)``) lies in this network.
    public func contains(_ address: [UInt8]) -> Bool {
        address.count == network.count && Self.mask(address, to: prefixLength) == network
    }

    /// Whether the textual `address` lies in this network; `false` for anything unparsable.
    public func contains(_ address: String) -> Bool {
        Self.parseAddress(address).map(contains) ?? false
    }

    /// An address as 4 or 16 bytes, IPv4-mapped IPv6 folded to IPv4; `nil` when not an address.
    /// Accepts `[v6]` brackets and drops a `%zone` suffix.
    public static func parseAddress(_ text: String) -> [UInt8]? {
        var text = text.trimmingBlanks()
        if text.hasPrefix("["), text.hasSuffix("]") { text = String(text.dropFirst().dropLast()) }
        if let zone = text.firstIndex(of: "%") { text = String(text[..<zone]) }
        guard !text.isEmpty else { return nil }
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            return withUnsafeBytes(of: &v4) { Array($0) }
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 {
            let bytes = withUnsafeBytes(of: &v6) { Array($0) }
            let mappedPrefix: [UInt8] = Array(repeating: 0, count: 10) + [0xff, 0xff]
            return Array(bytes[0..<12]) == mappedPrefix ? Array(bytes[12..<16]) : bytes
        }
        return nil
    }

    private static func mask(_ address: [UInt8], to length: Int) -> [UInt8] {
        address.enumerated().map { index, byte in
            let bits = max(0, min(8, length - index * 8))
            return bits == 8 ? byte : byte & ~(UInt8(0xff) >> bits)
        }
    }

    /// Parses a comma- or whitespace-separated list; an empty text is an empty list.
    public static func list(_ text: String) throws(CIDRBlockError) -> [CIDRBlock] {
        var blocks: [CIDRBlock] = []
        for item in text.split(whereSeparator: { $0 == "," || $0 == " " || $0 == "\n" || $0 == "\t" }) {
            blocks.append(try CIDRBlock(String(item)))
        }
        return blocks
    }
}

/// A CIDR that could not be parsed.
public struct CIDRBlockError: Error, Sendable, Equatable, CustomStringConvertible {
    public var text: String
    public var reason: String

    public var description: String { "\"\(text)\" is not a CIDR block: \(reason)" }
}

extension String {
    fileprivate func trimmingBlanks() -> String {
        let skip: Set<Character> = [" ", "\t"]
        var slice = Substring(self)
        while let first = slice.first, skip.contains(first) { slice = slice.dropFirst() }
        while let last = slice.last, skip.contains(last) { slice = slice.dropLast() }
        return String(slice)
    }
}
