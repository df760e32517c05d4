"""Temporal activities: where generators (controller) and executors (minions) run."""
