"""The statistics of the method comparison: mean ± std over seeds, paired differences with
a t-interval, and Kendall's τ-b with its p-value. Pure functions of plain numbers."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Difference", "KendallTau", "Summary", "finite_or_none", "kendall_tau_b", "t_quantile"]

# Exact Kendall p-values (no ties) up to this many pairs of values; beyond it, or with ties,
# the normal approximation with the tie-corrected variance.
EXACT_TAU_MAX_N = 50


def finite_or_none(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _scaled(value: float, unit: str, signed: bool = False) -> str:
    sign = "+" if signed else ""
    if unit == "%":
        return f"{value * 100:{sign}.1f}"
    if unit == "count":
        return f"{value:{sign},.0f}"
    return f"{value:{sign}.0f}"


@dataclass(frozen=True)
class Summary:
    """Mean and sample standard deviation of one figure over seeds (n values).

    Example:
        >>> Summary.of([0.8, 0.9]).format()
        '85.0 ± 7.1'
    """

    mean: float
    std: float | None
    n: int

    @classmethod
    def of(cls, values: Iterable[Any]) -> Summary | None:
        """The summary of the finite values given, or None when there is none."""
        finite = [v for v in (finite_or_none(value) for value in values) if v is not None]
        if not finite:
            return None
        std = statistics.stdev(finite) if len(finite) > 1 else None
        return cls(statistics.fmean(finite), std, len(finite))

    def format(self, unit: str = "%") -> str:
        """`mean ± std` in the column's unit (std left out for a single value)."""
        mean = _scaled(self.mean, unit)
        return mean if self.std is None else f"{mean} ± {_scaled(self.std, unit)}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: mean, std (None for one value), n."""
        return {"mean": self.mean, "std": self.std, "n": self.n}


def t_quantile(probability: float, df: int) -> float:
    """Student's t quantile (scipy.stats.t.ppf; scipy ships with scikit-learn)."""
    from scipy.stats import t

    return float(t.ppf(probability, df))


@dataclass(frozen=True)
class Difference:
    """The mean of per-seed differences (method − darts, same seed) with its 95 % t-interval.

    Args:
        mean: mean difference over the n seeds both ran.
        low, high: the 95 % interval, mean ± t(0.975, n−1)·sd/√n (None for n < 2).
        n: number of seed pairs.
        seeds: the seeds paired.
    """

    mean: float
    low: float | None
    high: float | None
    n: int
    seeds: tuple[int, ...]

    @classmethod
    def paired(cls, method: dict[int, float], baseline: dict[int, float]) -> Difference | None:
        """Pairs the two seed → value maps by seed (None when no seed is in both)."""
        seeds = tuple(sorted(set(method) & set(baseline)))
        if not seeds:
            return None
        diffs = [method[s] - baseline[s] for s in seeds]
        mean = statistics.fmean(diffs)
        if len(diffs) < 2:
            return cls(mean, None, None, 1, seeds)
        half = t_quantile(0.975, len(diffs) - 1) * statistics.stdev(diffs) / math.sqrt(len(diffs))
        return cls(mean, mean - half, mean + half, len(diffs), seeds)

    def format(self, unit: str = "%") -> str:
        """`+mean [low, high]` in the column's unit (no interval for one pair)."""
        mean = _scaled(self.mean, unit, signed=True)
        if self.low is None or self.high is None:
            return mean
        return f"{mean} [{_scaled(self.low, unit, True)}, {_scaled(self.high, unit, True)}]"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "mean": self.mean,
            "ci95": None if self.low is None else [self.low, self.high],
            "n": self.n,
            "seeds": list(self.seeds),
        }


@dataclass(frozen=True)
class KendallTau:
    """Kendall's τ-b between two paired samples and its two-sided p-value.

    Args:
        tau: τ-b = (C − D) / √((n0 − n1)(n0 − n2)), ties in either variable corrected.
        p_value: exact (the permutation distribution of the discordant-pair count) when no
            value is tied and n ≤ EXACT_TAU_MAX_N; otherwise the normal approximation of
            S = C − D with the tie-corrected variance (Kendall 1970), no continuity
            correction.
        n: number of pairs.
        method: "exact" or "normal".
    """

    tau: float
    p_value: float
    n: int
    method: str

    def format(self) -> str:
        """τ-b, p and n in one line."""
        return f"τ-b = {self.tau:+.3f}, p = {self.p_value:.3g} ({self.method}), n = {self.n}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"tau_b": self.tau, "p_value": self.p_value, "n": self.n, "method": self.method}


def _tie_sums(values: Sequence[float]) -> tuple[int, int, int]:
    counts: dict[float, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    pairs = sum(t * (t - 1) // 2 for t in counts.values())
    var = sum(t * (t - 1) * (2 * t + 5) for t in counts.values())
    return pairs, var, sum(t * (t - 1) * (t - 2) for t in counts.values())


def _exact_upper_tail(n: int, discordant: int) -> float:
    """P(D ≤ discordant) under independence: the share of the n! orderings with at most
    that many inversions (Mahonian numbers)."""
    counts = [1]
    for k in range(2, n + 1):  # inserting element k adds 0..k-1 inversions
        grown = [0] * (len(counts) + k - 1)
        for inversions, ways in enumerate(counts):
            for extra in range(k):
                grown[inversions + extra] += ways
        counts = grown
    return sum(counts[: discordant + 1]) / math.factorial(n)


def kendall_tau_b(x: Sequence[float], y: Sequence[float]) -> KendallTau | None:
    """Kendall's τ-b of paired values, or None when undefined (n < 2, or one variable has
    a single distinct value)."""
    if len(x) != len(y):
        raise ValueError(f"kendall_tau_b: {len(x)} x values but {len(y)} y values")
    n = len(x)
    if n < 2:
        return None
    concordant = discordant = 0
    for i in range(n):
        for j in range(i + 1, n):
            sign = (x[i] - x[j]) * (y[i] - y[j])
            if sign > 0:
                concordant += 1
            elif sign < 0:
                discordant += 1
    n0 = n * (n - 1) // 2
    n1, vx, wx = _tie_sums(x)
    n2, vy, wy = _tie_sums(y)
    if n1 == n0 or n2 == n0:
        return None
    s = concordant - discordant
    tau = s / math.sqrt((n0 - n1) * (n0 - n2))
    if n1 == 0 and n2 == 0 and n <= EXACT_TAU_MAX_N:
        tail = _exact_upper_tail(n, min(concordant, discordant))
        return KendallTau(tau, min(1.0, 2 * tail), n, "exact")
    var = (n * (n - 1) * (2 * n + 5) - vx - vy) / 18
    var += (2 * n1) * (2 * n2) / (2 * n * (n - 1))
    if n > 2:
        var += wx * wy / (9 * n * (n - 1) * (n - 2))
    p = math.erfc(abs(s) / math.sqrt(var) / math.sqrt(2)) if var > 0 else 1.0
    return KendallTau(tau, p, n, "normal")
