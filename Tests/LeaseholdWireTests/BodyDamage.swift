import Foundation
import LeaseholdCore

@testable import LeaseholdWire

/// What the body tests share: an answer as a comparable value, and damaged copies of good bodies.
enum BodyDamage {
    /// `decode`'s answer for `body`: the value or the rejection.
    static func result<Value>(_ decode: (Data) throws(BodyRejection) -> Value, _ body: String) -> Result<
        Value, BodyRejection
    > {
        do throws(BodyRejection) {
            return .success(try decode(Data(body.utf8)))
        } catch {
            return .failure(error)
        }
    }

    /// `count` copies of `bodies` (in turn), each with one to three bytes dropped, replaced by
    /// JSON's own punctuation, digits and letters, or doubled; the same for a seed on every run.
    static func damaged(_ bodies: [String], seed: UInt64, count: Int = 4_000) -> [String] {
        var generator = SeededGenerator(seed: seed)
        let alphabet = Array(#"{}[]:,"\.-+eE0123456789 nultrfabcdkoi_"#.utf8)
        let originals = bodies.map { Array($0.utf8) }
        return (0..<count).map { round in
            var bytes = originals[round % originals.count]
            for _ in 0...Int(generator.next() % 3) {
                let position = Int(generator.next() % UInt64(bytes.count))
                switch generator.next() % 3 {
                case 0: bytes.remove(at: position)
                case 1: bytes[position] = alphabet[Int(generator.next() % UInt64(alphabet.count))]
                default: bytes.insert(bytes[position], at: position)
                }
            }
            return String(decoding: bytes, as: UTF8.self)
        }
    }
}
