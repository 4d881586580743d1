/// The stack `baton up` runs when no configuration is given: the built-in demo algorithm every 10 s,
/// two processors storing into SQLite under `./data`, everything on 127.0.0.1.
enum DemoConfiguration {
    static let yaml = """
        # Written by `baton up` when run without --config: the built-in demo stack.
        data_dir: ./data
        processor:
          count: 2
        jobs:
          - name: demo
            every: 10s
            builtin: demo
            duration: 3s
            result_size: 4096
        """
}
