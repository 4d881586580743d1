import Config
import Testing

/// `store.url` names a PostgreSQL database, or is empty (SQLite); anything else is refused naming the key.
struct StoreURLTests {
    @Test(arguments: [
        "postgresql://baton@db.internal/results",
        "postgres://baton:secret@10.0.0.5:5433/results",
        "postgresql://baton@/results?host=/run/postgresql",
        "",
    ])
    func aPostgreSQLURLIsAccepted(url: String) throws {
        var config = Configuration()
        try config.applyOverrides(from: ["BATON_STORE_URL": url])
        #expect(config.store.url == url)
        try config.validate(source: "f.yaml")
    }

    @Test(arguments: [
        ("mysql://baton@db/results", "must be a PostgreSQL URL"),
        ("/var/lib/results.sqlite", "must be a PostgreSQL URL"),
        ("postgresql:///results", "names no host"),
        ("postgresql://baton@db.internal", "names no database"),
        ("postgresql://baton@db.internal/", "names no database"),
    ])
    func anythingElseIsRefusedNamingTheKey(url: String, problem: String) throws {
        let error = #expect(throws: ConfigurationError.self) {
            try Configuration.parse(yaml: "store:\n  url: \"\(url)\"\n", source: "f.yaml").validate(source: "f.yaml")
        }
        #expect(error?.field == "store.url")
        #expect(error?.problem.hasPrefix(problem) == true, "\(error?.problem ?? "")")
    }

    /// A password never appears in a message.
    @Test func thePasswordIsHiddenInMessages() throws {
        #expect(Configuration.Store.redacted("postgresql://baton:hunter2@db/results") == "postgresql://baton:***@db/results")
        let error = #expect(throws: ConfigurationError.self) {
            try Configuration.parse(yaml: "store:\n  url: \"mysql://baton:hunter2@db/results\"\n", source: "f.yaml")
                .validate(source: "f.yaml")
        }
        #expect(error?.problem.contains("hunter2") == false)
    }
}
