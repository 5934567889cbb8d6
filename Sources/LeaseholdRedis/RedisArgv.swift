/// Calls `body` with argc, `const char **argv` and `const size_t *argvlen` for binary-safe
/// arguments; every pointer is valid only during the call (``RedisConnection``).
func withArgv<R>(
    _ arguments: [[UInt8]],
    _ body: (Int32, UnsafeMutablePointer<UnsafePointer<CChar>?>, UnsafePointer<Int>) -> R
) -> R {
    var total = 1
    for argument in arguments { total += argument.count }
    var storage: [UInt8] = []
    storage.reserveCapacity(total)
    var offsets: [Int] = []
    offsets.reserveCapacity(arguments.count)
    var lengths: [Int] = []
    lengths.reserveCapacity(arguments.count)
    for argument in arguments {
        offsets.append(storage.count)
        lengths.append(argument.count)
        storage.append(contentsOf: argument)
    }
    storage.append(0)  // never empty, so baseAddress is never nil
    return storage.withUnsafeBufferPointer { buffer in
        let base = UnsafeRawPointer(buffer.baseAddress!).assumingMemoryBound(to: CChar.self)
        var argv: [UnsafePointer<CChar>?] = offsets.map { base + $0 }
        return argv.withUnsafeMutableBufferPointer { argvBuffer in
            lengths.withUnsafeBufferPointer { lengthBuffer in
                body(Int32(arguments.count), argvBuffer.baseAddress!, lengthBuffer.baseAddress!)
            }
        }
    }
}
