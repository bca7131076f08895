"""Uncertainty: Wilson intervals for rates, a bootstrap over seeds and test faces for mean
accuracies, exact McNemar tests between paired classifiers."""

from __future__ import annotations

import math

import numpy as np


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


def seeds_and_faces_interval(correct: list, level: float = 0.95, replicates: int = 4000,
                             seed: int = 0) -> tuple[float, float]:
    """Interval of a model's mean accuracy over seeds that covers both the seed-to-seed and the
    test-sampling variation: each replicate draws the seeds with replacement and the test faces
    with replacement (the same faces for every drawn seed: all seeds are tested on the same
    faces) and averages the drawn seeds' accuracies on the drawn faces. `correct`: one
    right/wrong array per seed, over the same test faces. One seed: the faces alone."""
    c = np.asarray([np.asarray(x, dtype=float) for x in correct])  # seeds x faces
    if c.ndim != 2 or c.shape[1] == 0:
        return (float("nan"), float("nan"))
    k, n = c.shape
    rng = np.random.default_rng(seed)
    accs = np.empty((replicates, k))
    for start in range(0, replicates, 500):  # face weights in blocks: memory stays small
        stop = min(start + 500, replicates)
        weights = rng.multinomial(n, np.full(n, 1 / n), size=stop - start)
        accs[start:stop] = weights @ c.T / n
    drawn = rng.integers(0, k, size=(replicates, k))
    means = np.take_along_axis(accs, drawn, axis=1).mean(1)
    tail = (1 - level) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return (float(low), float(high))
