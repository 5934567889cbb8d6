import ArgumentParser
import LeaseholdWire

/// `LEASEHOLD_REDACT_FIELDS`: the payload fields whose values the console and `leasehold dlq show`
/// replace with `[redacted]` (``PayloadRedactor``). Unset or empty: the default list; `none`: off;
/// `+a,b`: the default list and more; `a,b`: exactly these. A value it cannot read is refused
/// with the variable's name, and the command does nothing.
struct RedactFieldsSetting: EnvironmentSetting {
    let variable: String
    let summary: String
    let defaultNote: String?
    let detail: String?

    init(variable: String, summary: String, detail: String? = nil) {
        self.variable = variable
        self.summary = summary
        self.defaultNote = "default: the documented list, \(PayloadRedactor.defaultFields.joined(separator: ","))"
        self.detail = detail
    }

    /// The flag, else the variable, else ``PayloadRedactor/standard``.
    func resolve(_ flag: String?, environment: [String: String] = Settings.environment) throws -> PayloadRedactor {
        let name = flag == nil ? variable : "--redact-fields"
        guard let text = flag ?? text(in: environment) else { return .standard }
        do {
            return try PayloadRedactor.parse(text)
        } catch {
            throw ValidationError("\(name)=\(text): \(error)")
        }
    }
}
