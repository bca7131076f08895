"""fer_bench's Hydra configs; installed as the package `fer_bench.conf` (see pyproject.toml)."""
