import ArgumentParser
import Foundation

/// A setting a role reads: its flag, else its environment variable, else its default. The flag's
/// `--help` text and the fallback are both made from one value (``Settings`` holds them all), so
/// the help shows exactly the default the code uses. A malformed or out-of-range value is refused
/// with an error that names the variable.
protocol EnvironmentSetting: Sendable {
    /// The environment variable, e.g. `LEASEHOLD_WORKER_CONCURRENCY`.
    var variable: String { get }
    /// What the flag does, as its help begins: `Entries processed at once`.
    var summary: String { get }
    /// What the help says of the default: `default 16`, `default: one per CPU core`; `nil` says nothing.
    var defaultNote: String? { get }
    /// A sentence the help adds after the variable and the default, if any.
    var detail: String? { get }
}

extension EnvironmentSetting {
    /// `env: NAME; default 16`: the parenthesis of the help, also for a command's discussion.
    var environmentNote: String { "env: \(variable)" + (defaultNote.map { "; \($0)" } ?? "") }

    /// `<summary> (env: NAME; default 16).`, then the detail.
    var helpText: String { "\(summary) (\(environmentNote))." + (detail.map { " \($0)" } ?? "") }

    /// The flag's `--help`.
    var help: ArgumentHelp { ArgumentHelp(helpText) }

    /// The variable's value, `nil` when it is unset or empty.
    func text(in environment: [String: String]) -> String? {
        environment[variable].flatMap { $0.isEmpty ? nil : $0 }
    }
}

/// A whole number within a range.
struct IntSetting: EnvironmentSetting {
    let variable: String
    let defaultValue: Int
    let range: ClosedRange<Int>
    let summary: String
    let defaultNote: String?
    let detail: String?

    /// - Parameter shownDefault: what the help says instead of `default <n>`, when the number
    ///   alone would not say it (0 meaning "one per CPU core").
    init(
        variable: String, default defaultValue: Int, range: ClosedRange<Int>, summary: String,
        shownDefault: String? = nil, detail: String? = nil
    ) {
        self.variable = variable
        self.defaultValue = defaultValue
        self.range = range
        self.summary = summary
        self.defaultNote = shownDefault ?? "default \(defaultValue)"
        self.detail = detail
    }

    /// The flag, else the environment, else the default; refused outside ``range``.
    func resolve(_ flag: Int?, environment: [String: String] = Settings.environment) throws -> Int {
        try Self.checked(flag ?? Self.parse(variable, environment) ?? defaultValue, variable, range)
    }

    /// The variable as an integer, `nil` when it is unset or empty.
    fileprivate static func parse(_ variable: String, _ environment: [String: String]) throws -> Int? {
        guard let text = environment[variable], !text.isEmpty else { return nil }
        guard let parsed = Int(text) else { throw ValidationError("\(variable)=\(text) is not an integer") }
        return parsed
    }

    fileprivate static func checked(_ value: Int, _ variable: String, _ range: ClosedRange<Int>) throws -> Int {
        guard range.contains(value) else {
            throw ValidationError(
                "\(variable) must be between \(range.lowerBound) and \(range.upperBound), got \(value)")
        }
        return value
    }
}

/// A whole number within a range, or nothing: unset has a meaning of its own (the one-node
/// layout), which the help says instead of a default.
struct OptionalIntSetting: EnvironmentSetting {
    let variable: String
    let range: ClosedRange<Int>
    let summary: String
    let defaultNote: String?
    let detail: String?

    /// - Parameter unset: what the help says an unset variable means, after the range.
    init(variable: String, range: ClosedRange<Int>, summary: String, unset: String, detail: String? = nil) {
        self.variable = variable
        self.range = range
        self.summary = summary
        self.defaultNote = "\(range.lowerBound)...\(range.upperBound); unset: \(unset)"
        self.detail = detail
    }

    /// The flag, else the environment, else `nil`; refused outside ``range``.
    func resolve(_ flag: Int?, environment: [String: String] = Settings.environment) throws -> Int? {
        guard let given = try flag ?? IntSetting.parse(variable, environment) else { return nil }
        return try IntSetting.checked(given, variable, range)
    }
}

/// A duration given as a whole number of a unit (the flag's and the variable's `_MS`, `_HOURS`).
struct DurationSetting: EnvironmentSetting {
    /// The unit the flag and the variable count in.
    enum Unit: Sendable {
        case milliseconds
        case hours

        var one: Duration {
            switch self {
            case .milliseconds: .milliseconds(1)
            case .hours: .seconds(3600)
            }
        }
    }

    let unit: Unit
    let defaultValue: Duration
    /// The count behind it: flag, variable, default and ``range`` are all in ``unit``.
    let count: IntSetting

    var variable: String { count.variable }
    var summary: String { count.summary }
    var defaultNote: String? { count.defaultNote }
    var detail: String? { count.detail }
    var range: ClosedRange<Int> { count.range }

    init(
        variable: String, unit: Unit, default defaultValue: Duration, range: ClosedRange<Int>, summary: String,
        detail: String? = nil
    ) {
        self.unit = unit
        self.defaultValue = defaultValue
        self.count = IntSetting(
            variable: variable, default: Int((defaultValue / unit.one).rounded()), range: range, summary: summary,
            detail: detail)
    }

    func resolve(_ flag: Int?, environment: [String: String] = Settings.environment) throws -> Duration {
        unit.one * (try count.resolve(flag, environment: environment))
    }
}

/// true or false (also 1/0, yes/no, on/off).
struct BoolSetting: EnvironmentSetting {
    let variable: String
    let defaultValue: Bool
    let summary: String
    let defaultNote: String?
    let detail: String?

    init(variable: String, default defaultValue: Bool, summary: String, detail: String? = nil) {
        self.variable = variable
        self.defaultValue = defaultValue
        self.summary = summary
        self.defaultNote = "default \(defaultValue)"
        self.detail = detail
    }

    func resolve(_ flag: Bool?, environment: [String: String] = Settings.environment) throws -> Bool {
        if let flag { return flag }
        guard let text = text(in: environment)?.lowercased() else { return defaultValue }
        switch text {
        case "1", "true", "yes", "on": return true
        case "0", "false", "no", "off": return false
        default: throw ValidationError("\(variable)=\(text) must be true or false")
        }
    }
}

/// Text.
struct StringSetting: EnvironmentSetting {
    let variable: String
    /// The default, made when it is needed (a consumer name is new in every process).
    let makeDefault: @Sendable () -> String
    /// The default when it is the same every time; `nil` when it is made per process.
    let fixedDefault: String?
    let summary: String
    let defaultNote: String?
    let detail: String?
    /// Whether an empty variable counts as unset (the default) or as the value it is.
    let emptyIsUnset: Bool

    /// A setting whose default is `defaultValue`; `shownDefault` replaces `default <value>` in
    /// the help when the value alone would not say it (an empty value meaning "none").
    init(
        variable: String, default defaultValue: String, summary: String, shownDefault: String? = nil,
        detail: String? = nil, emptyIsUnset: Bool = true
    ) {
        self.variable = variable
        self.makeDefault = { defaultValue }
        self.fixedDefault = defaultValue
        self.summary = summary
        self.defaultNote = shownDefault ?? "default \(defaultValue)"
        self.detail = detail
        self.emptyIsUnset = emptyIsUnset
    }

    /// A setting whose default is made per process, described in the help by `shownDefault`.
    init(
        variable: String, summary: String, shownDefault: String, detail: String? = nil,
        default makeDefault: @escaping @Sendable () -> String
    ) {
        self.variable = variable
        self.makeDefault = makeDefault
        self.fixedDefault = nil
        self.summary = summary
        self.defaultNote = shownDefault
        self.detail = detail
        self.emptyIsUnset = true
    }

    func resolve(_ flag: String?, environment: [String: String] = Settings.environment) -> String {
        flag ?? (emptyIsUnset ? text(in: environment) : environment[variable]) ?? makeDefault()
    }
}
