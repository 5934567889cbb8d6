/// Polls `condition` every 20 ms until it holds; after `timeout` throws a ``TestSetupError`` that
/// names `what` and where the wait is written.
public func waitUntil(
    timeout: Duration = .seconds(60), _ what: String = "condition", fileID: String = #fileID, line: Int = #line,
    _ condition: () async throws -> Bool
) async throws {
    let deadline = ContinuousClock.now + timeout
    while try await !condition() {
        guard ContinuousClock.now < deadline else {
            throw TestSetupError("\(fileID):\(line): still not true after \(timeout): \(what)")
        }
        try await Task.sleep(for: .milliseconds(20))
    }
}
