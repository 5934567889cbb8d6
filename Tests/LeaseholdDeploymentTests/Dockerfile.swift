import Foundation
import LeaseholdTesting

/// Compose/Dockerfile's instructions, enough to check it against the repository: the copied
/// paths, the runtime stage's packages, its ENV, user and entrypoint.
struct Dockerfile {
    static let url = ComposeFile.directory.appendingPathComponent("Dockerfile")

    /// One instruction (continuation lines joined, comments dropped) and the stage it is in.
    struct Instruction {
        var keyword: String
        var arguments: String
        var stage: Int
    }

    let instructions: [Instruction]

    static func load() throws -> Dockerfile {
        let text = try String(contentsOf: url, encoding: .utf8)
        var instructions: [Instruction] = []
        var pending = ""
        var stage = -1
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.hasPrefix("#") || (trimmed.isEmpty && pending.isEmpty) { continue }
            if trimmed.hasSuffix("\\") {
                pending += trimmed.dropLast() + " "
                continue
            }
            let whole = (pending + trimmed).trimmingCharacters(in: .whitespaces)
            pending = ""
            guard !whole.isEmpty else { continue }
            let keyword = String(whole.prefix { !$0.isWhitespace }).uppercased()
            if keyword == "FROM" { stage += 1 }
            instructions.append(
                Instruction(
                    keyword: keyword, arguments: whole.dropFirst(keyword.count).trimmingCharacters(in: .whitespaces),
                    stage: stage))
        }
        return Dockerfile(instructions: instructions)
    }

    var lastStage: Int { instructions.map(\.stage).max() ?? 0 }

    /// Build-context paths copied into any stage (`COPY` without `--from`).
    var copiedPaths: [String] {
        instructions.filter { $0.keyword == "COPY" || $0.keyword == "ADD" }.flatMap { instruction -> [String] in
            let words = instruction.arguments.split(separator: " ").map(String.init)
            guard !words.contains(where: { $0.hasPrefix("--from") }) else { return [] }
            return Array(words.filter { !$0.hasPrefix("--") }.dropLast())
        }
    }

    /// `ENV` of the final stage: what every container of the image starts with.
    var environment: [String: String] {
        var result: [String: String] = [:]
        for instruction in instructions where instruction.keyword == "ENV" && instruction.stage == lastStage {
            for pair in instruction.arguments.split(separator: " ") {
                let parts = pair.split(separator: "=", maxSplits: 1)
                if parts.count == 2 { result[String(parts[0])] = String(parts[1]) }
            }
        }
        return result
    }

    /// A build argument's default (`ARG NAME="value"`), in the final stage.
    func argument(_ name: String) -> String? {
        for instruction in instructions where instruction.keyword == "ARG" && instruction.stage == lastStage {
            let parts = instruction.arguments.split(separator: "=", maxSplits: 1)
            if parts.count == 2, parts[0] == name {
                return parts[1].trimmingCharacters(in: CharacterSet(charactersIn: "\""))
            }
        }
        return nil
    }

    /// The last value of `keyword` in the final stage (`USER`, `ENTRYPOINT`, `WORKDIR`).
    func final(_ keyword: String) -> String? {
        instructions.last { $0.keyword == keyword && $0.stage == lastStage }?.arguments
    }

    /// The image of stage `index` (`FROM image AS name`).
    func baseImage(stage index: Int) -> String? {
        instructions.first { $0.keyword == "FROM" && $0.stage == index }?.arguments.split(separator: " ").first.map(
            String.init)
    }
}
