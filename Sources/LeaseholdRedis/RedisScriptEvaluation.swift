/// `EVALSHA`, then on `NOSCRIPT` (first use, a restart, `SCRIPT FLUSH`) `SCRIPT LOAD` and
/// `EVALSHA` again, then, if the script was flushed once more in between, `EVAL` with the source:
/// over any async `send`.
enum RedisScriptRunner {
    static func evaluate(
        _ script: RedisScript, keys: [any RedisArgument], arguments: [any RedisArgument],
        send: (RedisCommand) async throws -> RedisValue
    ) async throws -> RedisValue {
        let tail: [any RedisArgument] = [keys.count] + keys + arguments
        if let sha = script.sha {
            do {
                return try await send(RedisCommand(["EVALSHA", sha] + tail))
            } catch let error as RedisError where error.code == .noScript {
                // fall through to load it
            }
        }
        let loaded = try await send(RedisCommand("SCRIPT", "LOAD", script.source))
        guard let sha = loaded.string else {
            throw RedisError(
                source: .server, code: .proto, message: "SCRIPT LOAD returned \(loaded)", command: "SCRIPT")
        }
        script.sha = sha
        do {
            return try await send(RedisCommand(["EVALSHA", sha] + tail))
        } catch let error as RedisError where error.code == .noScript {
            return try await send(RedisCommand(["EVAL", script.source] + tail))
        }
    }
}
