"""Subcommands of the `pointcalip` command line (one module each)."""
