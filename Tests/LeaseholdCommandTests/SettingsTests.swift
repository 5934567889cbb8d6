import ArgumentParser
import LeaseholdConsole
import LeaseholdIngress
import LeaseholdNotifier
import LeaseholdSupervisor
import LeaseholdWire
import LeaseholdWorker
import Testing

@testable import leasehold

extension UnitTests {
    /// Every setting is defined once (``Settings``): the `--help` a role prints and the value it runs
    /// on when neither the flag nor the variable is given come from that one definition, and a bad
    /// value is refused with the variable's name.
    @Suite("Settings: one default each, shown by --help and used by the code")
    struct SettingsTests {
        /// The settings each command's `--help` documents, in a flag's help or in its discussion.
        static let documented: [(command: any ParsableCommand.Type, settings: [any EnvironmentSetting])] = {
            let common: [any EnvironmentSetting] = [
                Settings.Common.logLevel, Settings.Common.redisPrefix, Settings.Common.redisShards,
            ]
            let retry: [any EnvironmentSetting] = [
                Settings.Common.retryBase, Settings.Common.retryMaxDelay, Settings.Common.retryMaxAttempts,
                Settings.Common.metricsHost,
            ]
            return [
                (IngressCommand.self, common + Settings.Ingress.all),
                (WorkerCommand.self, common + retry + Settings.Worker.all),
                (SupervisorCommand.self, common + retry + Settings.Supervisor.all),
                (NotifierCommand.self, common + Settings.Notifier.all),
                (ConsoleCommand.self, common + Settings.Console.all + Settings.Redaction.all),
            ]
        }()

        /// The settings without a flag of their own (the shared ones' flags are checked by the first
        /// test alone: the discussion names the environment-only ones in a sentence of its own).
        static let environmentOnly: Set<String> = Set(
            (Settings.Common.all + [Settings.Console.secureCookies]).map(\.variable))

        /// Read by every role but named in no `--help` yet.
        static let undocumented: Set<String> = ["LEASEHOLD_LOG_BUFFER_BYTES"]

        /// The command's `--help`, unwrapped: one space wherever the help broke or indented a line.
        static func help(_ command: any ParsableCommand.Type) -> String {
            Leasehold.helpMessage(for: command, columns: 10_000).split(whereSeparator: \.isWhitespace).joined(
                separator: " ")
        }

        static func unwrapped(_ text: String) -> String {
            text.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        }

        @Test("every command's --help names each of its settings' variable and default")
        func helpNamesVariableAndDefault() {
            for (command, settings) in Self.documented {
                let help = Self.help(command)
                for setting in settings {
                    #expect(
                        help.contains("(\(Self.unwrapped(setting.environmentNote)))"),
                        "\(command._commandName) --help lacks (\(setting.environmentNote))")
                }
            }
        }

        @Test("a flag's help is its setting's help, word for word")
        func flagHelpIsTheSettingsHelp() {
            for (command, settings) in Self.documented {
                let help = Self.help(command)
                for setting in settings where !Self.environmentOnly.contains(setting.variable) {
                    #expect(
                        help.contains(Self.unwrapped(setting.helpText)), "\(command._commandName): \(setting.helpText)")
                }
            }
        }

        @Test("every setting is documented by some --help, but the listed exceptions")
        func everySettingIsDocumented() {
            let documented = Set(Self.documented.flatMap { $0.settings.map(\.variable) })
            let all = Set(Settings.all.map(\.variable))
            #expect(all.subtracting(documented) == Self.undocumented)
        }

        @Test("with no flag and no variable, every setting resolves to the default its help shows")
        func noFlagNoVariableGivesTheDefault() throws {
            let none: [String: String] = [:]
            for setting in Settings.all {
                switch setting {
                case let setting as IntSetting:
                    #expect(try setting.resolve(nil, environment: none) == setting.defaultValue)
                    if setting.variable != Settings.Ingress.eventLoopThreads.variable {
                        #expect(setting.defaultNote == "default \(setting.defaultValue)", "\(setting.variable)")
                    }
                case let setting as DurationSetting:
                    // A default that is not a whole number of the unit would show a rounded number.
                    #expect(try setting.resolve(nil, environment: none) == setting.defaultValue, "\(setting.variable)")
                    #expect(setting.defaultNote == "default \(setting.count.defaultValue)", "\(setting.variable)")
                case let setting as BoolSetting:
                    #expect(try setting.resolve(nil, environment: none) == setting.defaultValue)
                    #expect(setting.defaultNote == "default \(setting.defaultValue)")
                case let setting as StringSetting:
                    if let fixed = setting.fixedDefault {
                        #expect(setting.resolve(nil, environment: none) == fixed)
                    } else {
                        #expect(!setting.resolve(nil, environment: none).isEmpty, "\(setting.variable)")
                    }
                case let setting as OptionalIntSetting:
                    #expect(try setting.resolve(nil, environment: none) == nil)
                case let setting as RedactFieldsSetting:
                    #expect(try setting.resolve(nil, environment: none) == PayloadRedactor.standard)
                    #expect(
                        setting.defaultNote?.hasSuffix(PayloadRedactor.defaultFields.joined(separator: ",")) == true)
                default:
                    Issue.record("\(setting.variable): a kind of setting this test does not know")
                }
            }
        }

        @Test("a flag wins over the variable, the variable over the default")
        func flagThenVariableThenDefault() throws {
            let setting = Settings.Worker.concurrency
            let environment = [setting.variable: "7"]
            #expect(try setting.resolve(3, environment: environment) == 3)
            #expect(try setting.resolve(nil, environment: environment) == 7)
            #expect(try setting.resolve(nil, environment: [setting.variable: ""]) == setting.defaultValue)
            let lease = Settings.Worker.leaseTTL
            #expect(try lease.resolve(nil, environment: [lease.variable: "1500"]) == .milliseconds(1500))
            let retention = Settings.Supervisor.inboxRetention
            #expect(try retention.resolve(2, environment: [:]) == .seconds(7200))
        }

        /// The error a resolution throws, `nil` when it returns.
        static func refusal(_ resolve: () throws -> Void) -> String? {
            do {
                try resolve()
                return nil
            } catch let error as ValidationError {
                return error.message
            } catch {
                return "\(error)"
            }
        }

        @Test("a malformed or out-of-range variable is refused with the variable's name")
        func badValuesAreRefused() {
            for setting in Settings.all {
                let name = setting.variable
                var range: ClosedRange<Int>?
                var resolve: (([String: String]) throws -> Void)?
                switch setting {
                case let setting as IntSetting:
                    (range, resolve) = (setting.range, { _ = try setting.resolve(nil, environment: $0) })
                case let setting as DurationSetting:
                    (range, resolve) = (setting.range, { _ = try setting.resolve(nil, environment: $0) })
                case let setting as OptionalIntSetting:
                    (range, resolve) = (setting.range, { _ = try setting.resolve(nil, environment: $0) })
                case let setting as RedactFieldsSetting:
                    #expect(
                        Self.refusal { _ = try setting.resolve(nil, environment: [name: "a,,b"]) }
                            == "\(name)=a,,b: an empty field in \"a,,b\"")
                    #expect(
                        Self.refusal { _ = try setting.resolve("", environment: [:]) }
                            == "--redact-fields=: an empty list; write none to turn redaction off")
                    #expect((try? setting.resolve(nil, environment: [name: "none"])) == PayloadRedactor.off)
                    #expect((try? setting.resolve("a", environment: [name: "none"])) == PayloadRedactor(fields: ["a"]))
                case let setting as BoolSetting:
                    #expect(
                        Self.refusal { _ = try setting.resolve(nil, environment: [name: "Maybe"]) }
                            == "\(name)=maybe must be true or false")
                    for (text, value) in [("1", true), ("ON", true), ("no", false), ("false", false)] {
                        #expect((try? setting.resolve(nil, environment: [name: text])) == value, "\(name)=\(text)")
                    }
                default:
                    continue
                }
                guard let range, let resolve else { continue }
                #expect(Self.refusal { try resolve([name: "12x"]) } == "\(name)=12x is not an integer")
                for value in [range.lowerBound - 1, range.upperBound + 1] {
                    #expect(
                        Self.refusal { try resolve([name: String(value)]) }
                            == "\(name) must be between \(range.lowerBound) and \(range.upperBound), got \(value)")
                }
                #expect(Self.refusal { try resolve([name: String(range.lowerBound)]) } == nil, "\(name)")
                #expect(Self.refusal { try resolve([name: String(range.upperBound)]) } == nil, "\(name)")
            }
        }

        @Test("a role's configuration and its command's default are the same value")
        func configurationDefaultsAgree() throws {
            let none: [String: String] = [:]
            let worker = WorkerConfiguration()
            #expect(try Settings.Worker.concurrency.resolve(nil, environment: none) == worker.concurrency)
            #expect(try Settings.Worker.leaseTTL.resolve(nil, environment: none) == worker.leaseTTL)
            #expect(try Settings.Worker.drainTimeout.resolve(nil, environment: none) == worker.drainTimeout)
            #expect(try Settings.Worker.lockTimeout.resolve(nil, environment: none) == worker.lockTimeout)
            #expect(try Settings.Worker.statementTimeout.resolve(nil, environment: none) == worker.statementTimeout)
            #expect(try Settings.Worker.outageWindow.resolve(nil, environment: none) == worker.outageWindow)
            #expect(try Settings.Worker.oneBookingPerUser.resolve(nil, environment: none) == worker.rules.onePerUser)
            #expect(try Settings.Common.retryBase.resolve(nil, environment: none) == worker.retryPolicy.defaults.base)
            #expect(
                try Settings.Common.retryMaxDelay.resolve(nil, environment: none)
                    == worker.retryPolicy.defaults.maxDelay)
            #expect(
                try Settings.Common.retryMaxAttempts.resolve(nil, environment: none)
                    == worker.retryPolicy.defaults.maxAttempts)
            #expect(Settings.Common.redisPrefix.resolve(nil, environment: none) == worker.keys.prefix)

            let ingress = IngressConfiguration()
            #expect(Settings.Ingress.host.resolve(nil, environment: none) == ingress.host)
            #expect(try Settings.Ingress.port.resolve(nil, environment: none) == ingress.port)
            #expect(try Settings.Ingress.maxBodyBytes.resolve(nil, environment: none) == ingress.maxBodyBytes)
            #expect(try Settings.Ingress.highWaterMark.resolve(nil, environment: none) == ingress.highWaterMark)
            #expect(
                try Settings.Ingress.idleTimeoutSeconds.resolve(nil, environment: none) == ingress.idleTimeoutSeconds)
            #expect(
                try Settings.Ingress.bodyTimeoutSeconds.resolve(nil, environment: none) == ingress.bodyTimeoutSeconds)
            #expect(try Settings.Ingress.eventLoopThreads.resolve(nil, environment: none) == 0)
            #expect(ingress.eventLoopThreads == nil)
            #expect(try Settings.Ingress.redisMinReplicas.resolve(nil, environment: none) == ingress.redisMinReplicas)
            #expect(
                try Settings.Ingress.redisReplicaTimeout.resolve(nil, environment: none) == ingress.redisReplicaTimeout)

            let supervisor = SupervisorConfiguration()
            #expect(
                try Settings.Supervisor.visibilityTimeout.resolve(nil, environment: none)
                    == supervisor.visibilityTimeout)
            #expect(try Settings.Supervisor.interval.resolve(nil, environment: none) == supervisor.interval)
            #expect(try Settings.Supervisor.inboxRetention.resolve(nil, environment: none) == supervisor.inboxRetention)
            #expect(try Settings.Supervisor.leaderTTL.resolve(nil, environment: none) == supervisor.leader.ttl)
            #expect(
                try Settings.Supervisor.consumerIdleTimeout.resolve(nil, environment: none)
                    == supervisor.consumerIdleTimeout)
            #expect(try Settings.Supervisor.sampleInterval.resolve(nil, environment: none) == supervisor.sampleInterval)

            let notifier = NotifierConfiguration(token: try BotToken("123456789:AAE-secret_part_0123456789abcdefghij"))
            #expect(Settings.Notifier.apiBaseURL.resolve(nil, environment: none) == notifier.apiBaseURL)
            #expect(try Settings.Notifier.rate.resolve(nil, environment: none) == notifier.globalRate)
            #expect(try Settings.Notifier.chatInterval.resolve(nil, environment: none) == notifier.chatInterval)
            #expect(
                try Settings.Notifier.groupChatInterval.resolve(nil, environment: none) == notifier.groupChatInterval)
            #expect(try Settings.Notifier.concurrency.resolve(nil, environment: none) == notifier.concurrency)
            #expect(try Settings.Notifier.pollInterval.resolve(nil, environment: none) == notifier.pollInterval)
            #expect(try Settings.Notifier.requestTimeout.resolve(nil, environment: none) == notifier.requestTimeout)
            #expect(try Settings.Notifier.claimTimeout.resolve(nil, environment: none) == notifier.claimTimeout)
            #expect(try Settings.Notifier.drainTimeout.resolve(nil, environment: none) == notifier.drainTimeout)
            #expect(
                try Settings.Notifier.retryBase.resolve(nil, environment: none) == notifier.retryPolicy.defaults.base)
            #expect(
                try Settings.Notifier.retryMaxDelay.resolve(nil, environment: none)
                    == notifier.retryPolicy.defaults.maxDelay)
            #expect(
                try Settings.Notifier.maxAttempts.resolve(nil, environment: none)
                    == notifier.retryPolicy.defaults.maxAttempts)
            #expect(notifier.problem == nil)

            let console = ConsoleConfiguration(token: "t")
            #expect(Settings.Console.host.resolve(nil, environment: none) == console.host)
            #expect(try Settings.Console.port.resolve(nil, environment: none) == console.port)
            #expect(try Settings.Console.readOnly.resolve(nil, environment: none) == console.readOnly)
            #expect(try Settings.Console.sessionLifetime.resolve(nil, environment: none) == console.sessionLifetime)
            #expect(try Settings.Console.secureCookies.resolve(nil, environment: none) == console.secureCookies)
        }
    }
}
