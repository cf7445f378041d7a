/// What `--val-fraction` holds back (`PreferenceDataset.split`).
public enum ValidationSplit: String, Codable, Sendable, CaseIterable {
    /// A share of every user's comparisons: every seen user is in both halves.
    case comparisons
    /// A share of the prompts, with all their comparisons: the held-back texts are new.
    case prompts
}
