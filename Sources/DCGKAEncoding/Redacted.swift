/// A value that holds secrets: printing, debug-printing and reflecting it (`print`, string
/// interpolation, `dump`, test failure messages, a debugger's summary) shows its type name and
/// nothing of its contents, so no log can carry a key (issue 8, item 12).
public protocol RedactedDescription: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {}

extension RedactedDescription {
    public var description: String { "\(Self.self)(redacted)" }
    public var debugDescription: String { description }
    public var customMirror: Mirror { Mirror(self, children: [], displayStyle: .struct) }
}
