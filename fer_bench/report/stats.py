"""Uncertainty: Wilson intervals for rates, exact McNemar tests between paired classifiers."""

from __future__ import annotations

import math


def wilson(rate: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion observed as `rate` over n trials."""
    if n <= 0:
        return (float("nan"), float("nan"))
    denom = 1 + z * z / n
    centre = (rate + z * z / (2 * n)) / denom
    half = z * math.sqrt(rate * (1 - rate) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def mcnemar(correct_a, correct_b) -> dict:
    """Exact two-sided McNemar test on paired right/wrong outcomes of two models."""
    if len(correct_a) != len(correct_b):
        raise ValueError("McNemar needs the two models' outcomes on the same test images")
    b = sum(1 for x, y in zip(correct_a, correct_b) if x and not y)  # only A right
    c = sum(1 for x, y in zip(correct_a, correct_b) if y and not x)  # only B right
    n = b + c
    if n == 0:
        return {"only_a": 0, "only_b": 0, "p_value": 1.0}
    k = min(b, c)
    log_half = n * math.log(0.5)
    tail = sum(math.exp(_log_comb(n, i) + log_half) for i in range(k + 1))
    return {"only_a": b, "only_b": c, "p_value": min(1.0, 2 * tail)}


def _log_comb(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
