/// Entry point of the `prm` executable (placeholder until the argument parser lands).
public enum CLI {
    public static func main(_ arguments: [String]) -> Int32 { 0 }
}
