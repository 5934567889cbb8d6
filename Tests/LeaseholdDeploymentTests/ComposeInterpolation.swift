import Foundation

/// Compose's variable interpolation, as `docker compose config` applies it to every string in
/// compose.yaml: `${NAME}`, `$NAME`, `${NAME:-default}` / `${NAME-default}` (unset-or-empty /
/// unset), `${NAME:?message}` / `${NAME?message}` (required), and `$$` for a literal `$`.
/// Unset names without a default become empty strings, as in Compose.
enum ComposeInterpolation {
    struct MissingVariable: Error, CustomStringConvertible {
        var name: String
        var message: String
        var description: String { "required variable \(name) is missing: \(message)" }
    }

    static func interpolate(_ text: String, variables: [String: String]) throws -> String {
        var result = ""
        var rest = Substring(text)
        while let dollar = rest.firstIndex(of: "$") {
            result += rest[..<dollar]
            rest = rest[rest.index(after: dollar)...]
            if rest.first == "$" {
                result += "$"
                rest = rest.dropFirst()
            } else if rest.first == "{", let close = rest.firstIndex(of: "}") {
                let expression = rest[rest.index(after: rest.startIndex)..<close]
                result += try evaluate(expression, variables: variables)
                rest = rest[rest.index(after: close)...]
            } else {
                let name = rest.prefix { $0 == "_" || $0.isASCII && ($0.isLetter || $0.isNumber) }
                result += name.isEmpty ? "$" : variables[String(name)] ?? ""
                rest = rest.dropFirst(name.count)
            }
        }
        return result + rest
    }

    private static func evaluate(_ expression: Substring, variables: [String: String]) throws -> String {
        let name = expression.prefix { $0 == "_" || $0.isASCII && ($0.isLetter || $0.isNumber) }
        let modifier = expression.dropFirst(name.count)
        let value = variables[String(name)]
        for (operator_, emptyCounts) in [(":-", true), ("-", false), (":?", true), ("?", false)]
        where modifier.hasPrefix(operator_) {
            let argument = String(modifier.dropFirst(operator_.count))
            let missing = value == nil || (emptyCounts && value?.isEmpty == true)
            if operator_.hasSuffix("-") { return missing ? argument : value! }
            if missing { throw MissingVariable(name: String(name), message: argument) }
            return value!
        }
        return value ?? ""
    }

    /// The names a text refers to with `${NAME…}` (not the `$${…}` escapes meant for a shell).
    static func referencedNames(in text: String) -> Set<String> {
        var names: Set<String> = []
        var rest = Substring(text)
        while let dollar = rest.firstIndex(of: "$") {
            rest = rest[rest.index(after: dollar)...]
            if rest.first == "$" {
                rest = rest.dropFirst()
            } else if rest.first == "{" {
                let name = rest.dropFirst().prefix { $0 == "_" || $0.isASCII && ($0.isLetter || $0.isNumber) }
                if !name.isEmpty { names.insert(String(name)) }
            }
        }
        return names
    }

    /// A `.env` file: `NAME=value` lines; `#` comments and blank lines are skipped.
    static func dotenv(_ text: String) -> [String: String] {
        var variables: [String: String] = [:]
        for line in text.split(separator: "\n") {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            guard !trimmed.isEmpty, !trimmed.hasPrefix("#"), let equals = trimmed.firstIndex(of: "=") else { continue }
            variables[String(trimmed[..<equals])] = String(trimmed[trimmed.index(after: equals)...])
        }
        return variables
    }
}
