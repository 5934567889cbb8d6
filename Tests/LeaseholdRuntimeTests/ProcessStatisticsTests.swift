import Foundation
import LeaseholdRuntime
import Testing

extension UnitTests {
    /// `/proc/<pid>/stat` and `/proc/<pid>/status` parsing, for the demo's CPU and memory accounting.
    @Suite("Process statistics from /proc")
    struct ProcessStatisticsTests {
        @Test(.enabled(if: FileManager.default.fileExists(atPath: "/proc/self/stat")))
        func theRealStatOfThisProcessParses() throws {
            // Read to the end (a /proc file's size reads as 0).
            let handle = try #require(FileHandle(forReadingAtPath: "/proc/self/stat"))
            let text = String(decoding: handle.readDataToEndOfFile(), as: UTF8.self)
            try handle.close()
            let stat = try #require(ProcessStat(line: text.trimmingCharacters(in: .newlines)), "\(text)")
            #expect(stat.pid == getpid())
            #expect(stat.parentPID == getppid())
            #expect(stat.state.isLetter)
            #expect(!stat.command.isEmpty)
            // Burn CPU until the counters move by 50 ms (5 ticks): they cover every thread and never
            // go backwards.
            let before = try #require(ProcessStat.current())
            let deadline = ContinuousClock.now + .seconds(30)
            var after = before
            var spin: UInt64 = 0
            while after.ownTicks < before.ownTicks + 5 && ContinuousClock.now < deadline {
                for _ in 0..<100_000 { spin &+= 1 }
                after = try #require(ProcessStat.read(pid: getpid()))
            }
            #expect(spin > 0)
            #expect(after.ownTicks >= before.ownTicks + 5, "before \(before), after \(after)")
            #expect(ProcessStat.ticksPerSecond > 0)
        }

        @Test func aCommandWithSpacesAndParenthesesIsCutAtTheLastParenthesis() throws {
            // Fields: pid (comm) state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt
            // cmajflt utime stime cutime cstime priority nice num_threads …
            let line = "123 (a) b) R 45 123 123 0 -1 4194560 100 0 0 0 250 75 1000 300 20 0 4 0 5000 1000000 200"
            let stat = try #require(ProcessStat(line: line))
            #expect(stat.pid == 123)
            #expect(stat.command == "a) b")
            #expect(stat.state == "R")
            #expect(stat.parentPID == 45)
            #expect(stat.userTicks == 250)
            #expect(stat.systemTicks == 75)
            #expect(stat.childrenUserTicks == 1000)
            #expect(stat.childrenSystemTicks == 300)
            #expect(stat.ownTicks == 325)
            #expect(stat.childrenTicks == 1300)

            let spaced = try #require(
                ProcessStat(line: "7 (postgres: leasehold (idle)) S 1 7 7 0 -1 0 0 0 0 0 3 4 5 6 20 0 1 0 1 1 1"))
            #expect(spaced.command == "postgres: leasehold (idle)")
            #expect(spaced.state == "S")
            #expect(spaced.parentPID == 1)
            #expect(spaced.ownTicks == 7)
            #expect(spaced.childrenTicks == 11)
        }

        @Test func malformedLinesAreRefused() {
            #expect(ProcessStat(line: "") == nil)
            #expect(ProcessStat(line: "123 no parentheses R 1 2 3") == nil)
            #expect(ProcessStat(line: "x (a) R 1 1 1 0 -1 0 0 0 0 0 1 1 1 1 20 0 1") == nil, "pid not a number")
            #expect(ProcessStat(line: "1 (a) R 1 1 1 0 -1 0 0 0 0 0 1 1") == nil, "too few fields")
        }

        @Test func residentSetSizeComesFromVmRSS() throws {
            let status =
                "Name:\tleasehold\nVmPeak:\t  900000 kB\nVmHWM:\t   60000 kB\nVmRSS:\t   51200 kB\nThreads:\t9\n"
            #expect(parseResidentSetBytes(status: status) == 51200 * 1024)
            #expect(parseResidentSetBytes(status: "Name:\tkthreadd\nThreads:\t1\n") == nil, "kernel threads have none")
            if FileManager.default.fileExists(atPath: "/proc/self/status") {
                let own = try #require(residentSetBytes(pid: getpid()))
                #expect(own > 1_000_000, "a Swift test binary uses more than 1 MB")
            }
        }
    }
}
