extension Double {
    /// part / whole, 0 for an empty whole: an accuracy or hit rate before anything was counted.
    public init(ratio part: Int, of whole: Int) {
        self = whole == 0 ? 0 : Double(part) / Double(whole)
    }
}
