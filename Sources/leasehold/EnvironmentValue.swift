import ArgumentParser
import Foundation

/// Reads a setting from a flag, else the environment, else a default — refusing malformed values
/// with an error that names the variable.
enum Setting {
    static var environment: [String: String] { ProcessInfo.processInfo.environment }

    static func string(_ flag: String?, _ variable: String, default value: String) -> String {
        flag ?? environment[variable].flatMap { $0.isEmpty ? nil : $0 } ?? value
    }

    static func int(_ flag: Int?, _ variable: String, default value: Int, range: ClosedRange<Int>) throws -> Int {
        let resolved: Int
        if let flag {
            resolved = flag
        } else if let text = environment[variable], !text.isEmpty {
            guard let parsed = Int(text) else { throw ValidationError("\(variable)=\(text) is not an integer") }
            resolved = parsed
        } else {
            resolved = value
        }
        guard range.contains(resolved) else {
            throw ValidationError(
                "\(variable) must be between \(range.lowerBound) and \(range.upperBound), got \(resolved)")
        }
        return resolved
    }

    static func milliseconds(_ flag: Int?, _ variable: String, default value: Int, range: ClosedRange<Int>) throws
        -> Duration
    {
        .milliseconds(try int(flag, variable, default: value, range: range))
    }

    static func bool(_ flag: Bool?, _ variable: String, default value: Bool) throws -> Bool {
        if let flag { return flag }
        guard let text = environment[variable]?.lowercased(), !text.isEmpty else { return value }
        switch text {
        case "1", "true", "yes", "on": return true
        case "0", "false", "no", "off": return false
        default: throw ValidationError("\(variable)=\(text) must be true or false")
        }
    }
}
