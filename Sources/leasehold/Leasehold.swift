import ArgumentParser

@main
struct Leasehold: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Leasehold")
}
