import Foundation

/// One schema migration file, `Migrations/NNNN_name.sql`.
public struct Migration: Sendable, Equatable {
    public var version: Int64
    public var name: String
    public var sql: String

    public init(version: Int64, name: String, sql: String) {
        self.version = version
        self.name = name
        self.sql = sql
    }

    /// Loads every `NNNN_name.sql` in `directory`, ordered by version.
    ///
    /// Refuses, with the file named: a `.sql` file whose name is not `NNNN_name.sql`, two files
    /// with the same version, an empty file, and a file that is not UTF-8.
    public static func load(from directory: URL) throws(MigrationError) -> [Migration] {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory.path)
        } catch {
            throw .directoryUnreadable(path: directory.path, reason: "\(error.localizedDescription)")
        }
        var migrations: [Migration] = []
        for file in names where file.hasSuffix(".sql") {
            let stem = file.dropLast(4)
            guard let underscore = stem.firstIndex(of: "_"),
                let version = Int64(stem[..<underscore]), version > 0,
                stem[..<underscore].allSatisfy(\.isASCII),
                !stem[stem.index(after: underscore)...].isEmpty
            else {
                throw .badFileName(file)
            }
            let url = directory.appendingPathComponent(file)
            guard let data = FileManager.default.contents(atPath: url.path) else {
                throw .directoryUnreadable(path: url.path, reason: "cannot read file")
            }
            guard let sql = String(data: data, encoding: .utf8) else { throw .notUTF8(file) }
            guard !sql.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else { throw .emptyFile(file) }
            if let clash = migrations.first(where: { $0.version == version }) {
                throw .duplicateVersion(version, clash.fileName, file)
            }
            migrations.append(
                Migration(version: version, name: String(stem[stem.index(after: underscore)...]), sql: sql))
        }
        guard !migrations.isEmpty else { throw .noMigrations(path: directory.path) }
        return migrations.sorted { $0.version < $1.version }
    }

    /// `0001_booking.sql`
    public var fileName: String {
        let digits = String(version)
        return String(repeating: "0", count: max(0, 4 - digits.count)) + digits + "_" + name + ".sql"
    }

    /// Where migrations are looked for when not given: `$LEASEHOLD_MIGRATIONS_DIR`, else
    /// `./Migrations`, else `Migrations` beside the executable's parent directory.
    public static func defaultDirectory(environment: [String: String] = ProcessInfo.processInfo.environment) -> URL {
        if let configured = environment["LEASEHOLD_MIGRATIONS_DIR"], !configured.isEmpty {
            return URL(fileURLWithPath: configured)
        }
        let local = URL(fileURLWithPath: FileManager.default.currentDirectoryPath).appendingPathComponent("Migrations")
        if FileManager.default.fileExists(atPath: local.path) { return local }
        let executable = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        return executable.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Migrations")
    }
}

/// Why migrations could not be loaded or applied. Each case names the file or version involved.
public enum MigrationError: Error, Equatable, CustomStringConvertible {
    case directoryUnreadable(path: String, reason: String)
    case noMigrations(path: String)
    case badFileName(String)
    case notUTF8(String)
    case emptyFile(String)
    case duplicateVersion(Int64, String, String)
    /// An applied migration's file changed since it was applied.
    case checksumMismatch(version: Int64, file: String, applied: String, now: String)
    /// The migration's SQL failed; it was rolled back and nothing after it ran.
    case failed(file: String, reason: String)

    public var description: String {
        switch self {
        case .directoryUnreadable(let path, let reason):
            "cannot read migrations at \(path): \(reason) (set --migrations or LEASEHOLD_MIGRATIONS_DIR)"
        case .noMigrations(let path):
            "no NNNN_name.sql files in \(path) (set --migrations or LEASEHOLD_MIGRATIONS_DIR)"
        case .badFileName(let file):
            "migration file \(file) is not named NNNN_name.sql"
        case .notUTF8(let file):
            "migration file \(file) is not UTF-8"
        case .emptyFile(let file):
            "migration file \(file) is empty"
        case .duplicateVersion(let version, let first, let second):
            "migration version \(version) is used by both \(first) and \(second)"
        case .checksumMismatch(let version, let file, let applied, let now):
            "migration \(version) (\(file)) was changed after it was applied: checksum was \(applied.prefix(12))…, "
                + "file now has \(now.prefix(12))…; restore the file and add a new migration instead"
        case .failed(let file, let reason):
            "migration \(file) failed and was rolled back: \(reason)"
        }
    }
}
