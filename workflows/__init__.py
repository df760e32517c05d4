"""Temporal workflows: deterministic, no I/O. Plugin code never runs here."""
