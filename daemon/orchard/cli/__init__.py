"""The `orchard` command: a client of the daemon, like the editors."""
