/// prm's version, as `prm --version` and the service's `info` report it.
public enum PRMVersion {
    public static let current = "0.2.0"
}
