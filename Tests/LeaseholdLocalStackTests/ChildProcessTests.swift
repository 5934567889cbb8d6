import Foundation
import LeaseholdLocalStack
import Testing

extension UnitTests {
    @Suite struct ChildProcessTests {
        /// A child must not keep the parent's files open: a pipe whose write end the parent closes
        /// has to read as hung up while the child still runs (a child holding a copy keeps it open,
        /// so a reader waits for ever), and a listening socket must not outlive the parent in a
        /// server it started. `pipe(2)` without `O_CLOEXEC` is how most descriptors are opened.
        @Test func aChildInheritsNoDescriptorBeyondItsStandardStreams() async throws {
            var ends: [Int32] = [0, 0]
            try #require(pipe(&ends) == 0)
            defer { close(ends[0]) }
            let log = FileManager.default.temporaryDirectory.appendingPathComponent("lh-child-\(getpid()).log")
            defer { try? FileManager.default.removeItem(at: log) }
            let child = try ChildProcess(
                name: "sleep", executable: URL(fileURLWithPath: "/bin/sh"),
                arguments: ["-c", "ls /proc/$$/fd; exec sleep 10"], log: log)
            defer { child.send(SIGKILL) }
            close(ends[1])
            var entry = pollfd(fd: ends[0], events: Int16(POLLIN), revents: 0)
            let ready = poll(&entry, 1, 2_000)
            #expect(ready == 1 && entry.revents & Int16(POLLHUP) != 0, "the child holds the pipe's write end open")
            // What the shell saw open: its standard streams and the directory `ls` reads, no more.
            let deadline = ContinuousClock.now + .seconds(5)
            var listed: [String] = []
            while ContinuousClock.now < deadline {
                listed = (try? String(contentsOf: log, encoding: .utf8))?.split(separator: "\n").map(String.init) ?? []
                if listed.count >= 3 { break }
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(Set(listed).isSubset(of: ["0", "1", "2", "3"]), "open in the child: \(listed)")
        }
    }
}
