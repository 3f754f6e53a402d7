"""Throughput and peer benchmarks (run as ``python -m benchmarks.<name>``)."""
