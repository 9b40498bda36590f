"""Benchmarks: figures users care about, printed as tables and written as JSON."""
