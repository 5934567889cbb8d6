/// Which of a Redis Cluster's 16384 hash slots a key belongs to, computed as the servers do.
///
/// The slot is `CRC16(k) mod 16384`, CRC16 being the XMODEM variant (polynomial 0x1021, initial
/// value 0, no reflection), where `k` is the whole key unless the key has a *hash tag*: if it holds
/// a `{`, and a `}` somewhere after that first `{`, and at least one byte between the two, only the
/// bytes between that first `{` and the first `}` after it are hashed. So `lh:{bookings:3}:stream`
/// and `lh:{bookings:3}:retry` share a slot, while `a{}b` (empty tag) is hashed whole, and
/// `a{{b}}` hashes `{b`.
public enum RedisClusterSlot {
    /// The number of hash slots in a cluster.
    public static let count = 16384

    /// The slot of `key` (0 ..< 16384).
    public static func slot(for key: some RedisArgument) -> Int {
        slot(forKeyBytes: key.redisBytes)
    }

    /// The slot of a key given as bytes.
    public static func slot(forKeyBytes key: [UInt8]) -> Int {
        Int(crc16(hashedPart(of: key)) & UInt16(count - 1))
    }

    /// The bytes of `key` that decide its slot: the hash tag if there is a non-empty one, else the
    /// whole key.
    public static func hashedPart(of key: [UInt8]) -> ArraySlice<UInt8> {
        guard let open = key.firstIndex(of: UInt8(ascii: "{")),
            let close = key[(open + 1)...].firstIndex(of: UInt8(ascii: "}")),
            close > open + 1
        else { return key[...] }
        return key[(open + 1)..<close]
    }

    /// CRC16/XMODEM: polynomial 0x1021, initial value 0, no reflection, no final XOR
    /// (`CRC16("123456789") == 0x31C3`).
    public static func crc16(_ bytes: some Sequence<UInt8>) -> UInt16 {
        var crc: UInt16 = 0
        for byte in bytes {
            crc = (crc << 8) ^ table[Int(UInt8(truncatingIfNeeded: crc >> 8) ^ byte)]
        }
        return crc
    }

    /// CRC16/XMODEM of every byte value, one table lookup per byte instead of eight shifts.
    private static let table: [UInt16] = (0..<256).map { value in
        var crc = UInt16(value) << 8
        for _ in 0..<8 {
            crc = crc & 0x8000 != 0 ? (crc << 1) ^ 0x1021 : crc << 1
        }
        return crc
    }
}
