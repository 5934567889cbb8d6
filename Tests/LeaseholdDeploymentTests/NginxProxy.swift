import Foundation
import LeaseholdLocalStack
import LeaseholdTesting

/// Debian's nginx serving the templates compose.yaml mounts (Compose/nginx/*.conf.template: the
/// ingress proxy and the console's virtual host), rendered as the nginx image's entrypoint renders
/// them (envsubst of the given variables only, each into conf.d/<name>) and included as its
/// /etc/nginx/nginx.conf includes them (`conf.d/*.conf`, in name order, so console.conf first),
/// inside a minimal main configuration like the image's.
final class NginxProxy: Sendable {
    static let templates = ComposeFile.directory.appendingPathComponent("nginx")

    /// `$LEASEHOLD_NGINX`, else /usr/sbin/nginx (`.ci/setup` installs Debian's `nginx`).
    static var executable: URL? {
        let path = ProcessInfo.processInfo.environment["LEASEHOLD_NGINX"] ?? "/usr/sbin/nginx"
        return FileManager.default.isExecutableFile(atPath: path) ? URL(fileURLWithPath: path) : nil
    }

    let process: ChildProcess
    let directory: URL

    /// Like `envsubst "$defined"`: `${NAME}` and `$NAME` are replaced for the names in `variables`;
    /// anything else (nginx's own `$host`, `$remote_addr`) is left alone.
    static func render(_ template: String, variables: [String: String]) -> String {
        var result = ""
        var rest = Substring(template)
        while let dollar = rest.firstIndex(of: "$") {
            result += rest[..<dollar]
            rest = rest[rest.index(after: dollar)...]
            let braced = rest.first == "{"
            let body = braced ? rest.dropFirst() : rest
            let name = String(body.prefix { $0 == "_" || $0.isASCII && ($0.isLetter || $0.isNumber) })
            let closed = !braced || body.dropFirst(name.count).first == "}"
            if let value = variables[name], !name.isEmpty, closed {
                result += value
                rest = body.dropFirst(name.count + (braced ? 1 : 0))
            } else {
                result += "$"
            }
        }
        return result + rest
    }

    /// Renders the template with `variables` and starts nginx on it; returns once it answers on
    /// `port` (any HTTP status).
    static func start(variables: [String: String], port: Int, in directory: URL) async throws -> NginxProxy {
        guard let executable else {
            throw TestSetupError(
                "nginx is not installed (apt-get install nginx, as .ci/setup does), or set LEASEHOLD_NGINX")
        }
        let included = directory.appendingPathComponent("conf.d")
        try FileManager.default.createDirectory(at: included, withIntermediateDirectories: true)
        let names = try FileManager.default.contentsOfDirectory(atPath: templates.path).filter {
            $0.hasSuffix(".conf.template")
        }
        for name in names {
            let text = try String(contentsOf: templates.appendingPathComponent(name), encoding: .utf8)
            try render(text, variables: variables).write(
                to: included.appendingPathComponent(String(name.dropLast(".template".count))), atomically: true,
                encoding: .utf8)
        }
        let paths = directory.path
        let main = """
            \(getuid() == 0 ? "user root;" : "")
            worker_processes 1;
            daemon off;
            # A graceful stop (SIGQUIT) waits for every connection that is not idle, and one accepted
            # but without a request yet counts: it would hold the stop up to client_header_timeout (60 s).
            worker_shutdown_timeout 5s;
            pid \(paths)/nginx.pid;
            error_log \(paths)/error.log warn;
            events { worker_connections 256; }
            http {
                access_log \(paths)/access.log;
                client_body_temp_path \(paths)/client_body;
                proxy_temp_path \(paths)/proxy;
                fastcgi_temp_path \(paths)/fastcgi;
                uwsgi_temp_path \(paths)/uwsgi;
                scgi_temp_path \(paths)/scgi;
                include \(paths)/conf.d/*.conf;
            }
            """
        let configuration = directory.appendingPathComponent("nginx.conf")
        try main.write(to: configuration, atomically: true, encoding: .utf8)
        let process = try ChildProcess(
            name: "nginx", executable: executable,
            arguments: ["-p", paths, "-e", "\(paths)/error.log", "-c", configuration.path],
            log: directory.appendingPathComponent("nginx.log"))
        let proxy = NginxProxy(process: process, directory: directory)
        let deadline = ContinuousClock.now + .seconds(20)
        while !loopbackAccepts(port: port) {
            guard process.isRunning, ContinuousClock.now < deadline else {
                await process.stop(signal: SIGKILL, timeout: .seconds(5))
                let errors =
                    (try? String(contentsOf: directory.appendingPathComponent("error.log"), encoding: .utf8)) ?? ""
                throw TestSetupError("nginx did not start:\n\(process.output)\n\(errors)")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        return proxy
    }

    private init(process: ChildProcess, directory: URL) {
        self.process = process
        self.directory = directory
    }

    /// SIGQUIT, the nginx image's stop signal: finish requests in flight, then exit (within
    /// `worker_shutdown_timeout`; SIGKILL after 15 s).
    func stop() async {
        await process.stop(signal: SIGQUIT, timeout: .seconds(15))
    }
}
