/// Compares a presented secret with the expected one in time that depends only on the expected
/// secret's length, so response timing does not reveal how many leading bytes matched.
func constantTimeEquals(_ presented: some StringProtocol, _ expected: String) -> Bool {
    let presentedBytes = Array(presented.utf8)
    let expectedBytes = Array(expected.utf8)
    guard !expectedBytes.isEmpty else { return false }
    var difference = UInt8(truncatingIfNeeded: presentedBytes.count ^ expectedBytes.count)
    for index in expectedBytes.indices {
        let byte = index < presentedBytes.count ? presentedBytes[index] : 0
        difference |= byte ^ expectedBytes[index]
    }
    return difference == 0
}
