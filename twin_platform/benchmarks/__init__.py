"""Benchmarks: commands that print JSON (never timed tests)."""
