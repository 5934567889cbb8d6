import Foundation
import Mustache

/// Renders the console's pages: a page template into the layout, everything escaped by Mustache.
public struct ConsoleRenderer: Sendable {
    private let library: MustacheLibrary

    public init() throws {
        var library = MustacheLibrary()
        for (name, text) in ConsoleTemplates.all {
            try library.register(text, named: name)
        }
        self.library = library
    }

    /// The logged-in part of the layout: who, whether read-only, and the logout form's CSRF token.
    public struct Viewer: Sendable {
        public var name: String
        public var csrf: String
        public var readOnly: Bool
    }

    /// `template` rendered with `context`, inside the layout.
    public func page(_ template: String, title: String, viewer: Viewer?, _ context: [String: Any]) -> String {
        // A nil optional wrapped in `Any` would count as a value in a section: leave it out.
        var context = context.filter { !Self.isNil($0.value) }
        if let viewer { context["csrf"] = viewer.csrf }
        let body = library.render(context, withTemplate: template) ?? ""
        var layout: [String: Any] = ["title": title, "css": ConsoleTemplates.css, "body": body]
        if let viewer {
            layout["user"] = viewer.name
            layout["csrf"] = viewer.csrf
            layout["readOnly"] = viewer.readOnly
        }
        return library.render(layout, withTemplate: "layout") ?? ""
    }

    static func isNil(_ value: Any) -> Bool {
        let mirror = Mirror(reflecting: value)
        return mirror.displayStyle == .optional && mirror.children.isEmpty
    }

    /// A time as people read it in a table: `2026-01-02 10:00:00 UTC`.
    public static func time(_ date: Date?) -> String {
        guard let date else { return "" }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyy-MM-dd HH:mm:ss 'UTC'"
        return formatter.string(from: date)
    }

    /// A duration in seconds as `850 ms`, `12.5 s`, `4 min`, `3.2 h`.
    public static func age(seconds: Double) -> String {
        switch seconds {
        case ..<1: return "\(Int(seconds * 1000)) ms"
        case ..<120: return String(format: "%.1f s", seconds)
        case ..<7200: return "\(Int(seconds / 60)) min"
        default: return String(format: "%.1f h", seconds / 3600)
        }
    }
}
