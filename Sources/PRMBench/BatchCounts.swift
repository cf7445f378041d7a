import PRMServing

/// The server's compute-batch counters from its `metrics` reply: subtracting two readings taken
/// around a case shows how many requests and items each of that case's batches held, the
/// evidence that server-side batching happened.
struct BatchCounts {
    var batches = 0, requests = 0, items = 0

    init(endpoint: String) throws {
        let counters = try ScoringClient(endpoint: endpoint, timeout: 30).metrics()["batches"]?.object
        batches = counters?["count"]?.number?.integer ?? 0
        requests = counters?["requests"]?.number?.integer ?? 0
        items = counters?["items"]?.number?.integer ?? 0
    }

    /// No batches (a sum's start).
    init() {}

    private init(batches: Int, requests: Int, items: Int) { (self.batches, self.requests, self.items) = (batches, requests, items) }

    /// The counts between `earlier` and this reading.
    func since(_ earlier: BatchCounts) -> BatchCounts {
        BatchCounts(batches: batches - earlier.batches, requests: requests - earlier.requests, items: items - earlier.items)
    }

    /// The counts of two disjoint spans together.
    func plus(_ other: BatchCounts) -> BatchCounts {
        BatchCounts(batches: batches + other.batches, requests: requests + other.requests, items: items + other.items)
    }

    var meanRequests: Double { batches > 0 ? Double(requests) / Double(batches) : 0 }
    var meanItems: Double { batches > 0 ? Double(items) / Double(batches) : 0 }
}
