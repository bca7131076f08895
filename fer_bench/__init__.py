"""fer_bench: a benchmarking harness for facial expression recognition."""

__version__ = "0.1.0"
