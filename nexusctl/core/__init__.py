"""Use cases shared by the CLI and the daemon: the only place with business rules."""
