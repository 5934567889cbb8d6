import Foundation
import LeaseholdTesting

/// What the built `leasehold` says it reads: every `env: NAME` in `leasehold <role> --help`.
///
/// The help text is the contract (house rule: every variable a role reads appears there as
/// `(env: NAME)`), so the list comes from the real binary, never from a copy kept in a test.
enum RoleHelp {
    /// `leasehold <role…> --help`'s text; throws when it does not exit 0 (an unknown role).
    static func text(role: [String]) async throws -> String {
        let directory = try makeTemporaryDirectory("help")
        defer { try? FileManager.default.removeItem(at: directory) }
        let result = try await LeaseholdExecutable.run(role + ["--help"], in: directory, timeout: .seconds(60))
        guard result.status == 0 else {
            throw TestSetupError(
                "leasehold \((role + ["--help"]).joined(separator: " ")) exited \(result.status):\n\(result.output)")
        }
        return result.output
    }

    /// The variables `leasehold <role…>` reads, from its `--help`.
    static func environmentVariables(role: [String]) async throws -> Set<String> {
        names(in: try await text(role: role))
    }

    /// Every `env: NAME` (also `env: A, B` and `env: A / B`) in a help text; the help wraps lines
    /// between words, so the name may follow on the next line.
    static func names(in help: String) -> Set<String> {
        let name = #"[A-Z][A-Z0-9_]*"#
        let pattern = try! NSRegularExpression(pattern: #"env:\s*(\#(name)(?:\s*[,/]\s*\#(name))*)"#)
        var names: Set<String> = []
        let range = NSRange(help.startIndex..., in: help)
        for match in pattern.matches(in: help, range: range) {
            guard let list = Range(match.range(at: 1), in: help) else { continue }
            for item in help[list].split(whereSeparator: { $0 == "," || $0 == "/" }) {
                names.insert(item.trimmingCharacters(in: .whitespacesAndNewlines))
            }
        }
        return names
    }
}
