"""Per-connection protocol state machine: events in, commands out. No I/O, no sqlglot."""
