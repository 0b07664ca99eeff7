/// Mean and sample standard deviation of a list of values.
public struct Summary: Sendable, Equatable {
    public var count: Int
    public var mean: Double
    /// Sample standard deviation (n − 1); 0 for fewer than two values.
    public var sd: Double

    public init(_ values: [Double]) {
        count = values.count
        guard !values.isEmpty else {
            mean = .nan
            sd = .nan
            return
        }
        let m = values.reduce(0, +) / Double(values.count)
        mean = m
        if values.count < 2 {
            sd = 0
        } else {
            let squares = values.reduce(0) { $0 + ($1 - m) * ($1 - m) }
            sd = (squares / Double(values.count - 1)).squareRoot()
        }
    }
}

/// The median of a non-empty list.
func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    let mid = sorted.count / 2
    return sorted.count % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}
