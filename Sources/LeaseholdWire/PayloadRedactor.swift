import Foundation

/// What operators are shown of a payload (a dead letter's): the JSON with the
/// values of a list of fields replaced by ``marker``, so that names, usernames, phone numbers,
/// message texts and payment-method details stay out of the console, the CLI and the logs unless
/// someone asks to see them (`--reveal`, the console's Reveal action).
///
/// How it reads a payload:
///
/// - JSON is parsed (keys with `\u` escapes are compared as the names they spell, so
///   `"user\u006eame"` is `username`), every object member whose key is in the list, at any depth,
///   has its whole value replaced by the string ``marker`` (a string, a number, an object or an
///   array alike: the type is not kept, so neither is the shape of a redacted object), and the
///   result is written back with sorted keys. Keys match case-insensitively.
/// - A field with a dot (`object.description`) is a path from the top: it matches only there, each
///   step an object key (arrays are passed through).
/// - Anything that is not one strict RFC 8259 value as ``StrictJSON`` reads it (invalid,
///   truncated, not UTF-8, another format, an object with the same key twice, nested deeper than
///   ``StrictJSON/maxDepth``) is never shown: it becomes ``unparseable(byteCount:)``, which says
///   only how long it was.
/// - With no fields (``off``) the payload is shown as it is.
public struct PayloadRedactor: Sendable, Equatable {
    /// What replaces a redacted value.
    public static let marker = "[redacted]"

    /// What replaces a payload that does not parse.
    public static func unparseable(byteCount: Int) -> String {
        "[unparseable payload, \(byteCount) bytes, redacted]"
    }

    /// The fields redacted unless configured otherwise, and why each.
    ///
    /// Telegram (updates, the users and chats in them): `first_name`, `last_name`, `username`
    /// (a user's or a chat's name), `phone_number`, `text` and `caption` (what a user wrote),
    /// `contact`, `location`, `venue` (a shared contact, place), `email`, `bio`.
    /// YooKassa (notifications): `payment_method` (card first6/last4, expiry, card type, issuer,
    /// wallet or account title), `card` and `payer_bank_details` wherever they appear,
    /// `receipt` (its customer's email and phone), `customer`, `phone`, `description` (free text
    /// the shop writes about a payment, often with the user's name), `metadata` (free key/value
    /// pairs the shop attaches), `authorization_details` (RRN, auth code, 3-D Secure).
    public static let defaultFields: [String] = [
        "first_name", "last_name", "username", "phone_number", "text", "caption", "contact", "location", "venue",
        "email", "bio", "payment_method", "card", "payer_bank_details", "receipt", "customer", "phone",
        "description", "metadata", "authorization_details",
    ]

    /// The default list.
    public static let standard = PayloadRedactor(fields: defaultFields)

    /// Redaction off: payloads are shown as they are.
    public static let off = PayloadRedactor(fields: [])

    /// The fields redacted, lowercased, in the order given, without repeats.
    public let fields: [String]
    private let names: Set<String>
    private let paths: Set<String>

    /// Redacts `fields` (names, or dotted paths from the top).
    public init(fields: [String]) {
        var seen: Set<String> = []
        self.fields = fields.map { $0.lowercased() }.filter { seen.insert($0).inserted }
        self.names = Set(self.fields.filter { !$0.contains(".") })
        self.paths = Set(self.fields.filter { $0.contains(".") })
    }

    /// Whether anything is redacted.
    public var isOn: Bool { !fields.isEmpty }

    /// The payload as shown, pretty-printed with sorted keys (unparseable: see the type).
    public func pretty(_ bytes: some Collection<UInt8>) -> String {
        render(Array(bytes), options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
    }

    /// The payload as shown, on one line with sorted keys (unparseable: see the type).
    public func compact(_ bytes: some Collection<UInt8>) -> String {
        render(Array(bytes), options: [.sortedKeys, .withoutEscapingSlashes])
    }

    /// ``pretty(_:)`` of text.
    public func pretty(_ text: String) -> String { pretty(Array(text.utf8)) }

    /// ``compact(_:)`` of text.
    public func compact(_ text: String) -> String { compact(Array(text.utf8)) }

    private func render(_ bytes: [UInt8], options: JSONSerialization.WritingOptions) -> String {
        // StrictJSON first: JSONSerialization alone takes some invalid forms (a trailing comma) and
        // keeps one of two equal keys.
        guard (try? StrictJSON.check(bytes)) != nil,
            let object = try? JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed])
        else {
            return isOn ? Self.unparseable(byteCount: bytes.count) : String(decoding: bytes, as: UTF8.self)
        }
        let redacted = isOn ? redact(object, path: []) : object
        guard
            let data = try? JSONSerialization.data(withJSONObject: redacted, options: options.union(.fragmentsAllowed))
        else {
            return isOn ? Self.unparseable(byteCount: bytes.count) : String(decoding: bytes, as: UTF8.self)
        }
        return String(decoding: data, as: UTF8.self)
    }

    /// `value` with the listed members replaced; `path` is the keys from the top to it.
    private func redact(_ value: Any, path: [String]) -> Any {
        if let object = value as? [String: Any] {
            var result: [String: Any] = [:]
            for (key, member) in object {
                let lowered = key.lowercased()
                let here = path + [lowered]
                if names.contains(lowered) || paths.contains(here.joined(separator: ".")) {
                    result[key] = Self.marker
                } else {
                    result[key] = redact(member, path: here)
                }
            }
            return result
        }
        if let array = value as? [Any] {
            return array.map { redact($0, path: path) }
        }
        return value
    }

    // MARK: The setting

    /// Why a field list was refused.
    public struct FieldListError: Error, CustomStringConvertible, Equatable {
        public var description: String
    }

    /// A field list as operators write it (`LEASEHOLD_REDACT_FIELDS`):
    ///
    /// - `default`: ``defaultFields``;
    /// - `none`: nothing redacted (``off``);
    /// - `+a,b`: the default list and `a`, `b`;
    /// - `a,b`: exactly `a` and `b`.
    ///
    /// A field is 1 to 128 letters, digits, `_`, `-` or `$`, in dot-separated steps. An empty
    /// value, an empty field or any other character is refused: turning redaction off takes the
    /// word `none`.
    public static func parse(_ text: String) throws(FieldListError) -> PayloadRedactor {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        switch trimmed.lowercased() {
        case "default": return .standard
        case "none": return .off
        case "": throw FieldListError(description: "an empty list; write none to turn redaction off")
        default: break
        }
        let extending = trimmed.hasPrefix("+")
        let list = extending ? trimmed.dropFirst() : trimmed[...]
        var fields: [String] = []
        for raw in list.split(separator: ",", omittingEmptySubsequences: false) {
            let field = raw.trimmingCharacters(in: .whitespaces)
            guard isField(field) else {
                throw FieldListError(
                    description: field.isEmpty
                        ? "an empty field in \"\(text)\""
                        : "\"\(field)\" is not a field name (letters, digits, _ - $ and dots)")
            }
            fields.append(field)
        }
        return PayloadRedactor(fields: (extending ? defaultFields : []) + fields)
    }

    private static let fieldCharacters = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "_-$"))

    private static func isField(_ field: String) -> Bool {
        guard (1...128).contains(field.count) else { return false }
        return field.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { step in
            !step.isEmpty && step.unicodeScalars.allSatisfy { fieldCharacters.contains($0) }
        }
    }
}
