"""Benchmark: the service's throughput, latency and memory against raw WeasyPrint on the same machine."""
