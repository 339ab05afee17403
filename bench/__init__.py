"""Benchmark scripts (never timed tests): quality of crop placement, speed and memory of the engine."""
