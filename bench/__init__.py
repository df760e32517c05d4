"""Benchmarks: `make bench` (quick sizes) and `make bench-full`. See bench/run.py."""
