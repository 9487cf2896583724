"""Accuracy metrics over problems with G samples each: pass@1, maj@k, unbiased pass@k, tokens, cuts.

- pass@1: per problem the fraction of correct samples, averaged over problems (the paper's pass@1
  over 32 samples; s1 and evalchemy do the same).
- maj@k, k = 1..G: per problem, the majority among the FIRST k samples (grouped by equivalence, see
  ``equivalence.group_votes``; ties to the earliest sample) is correct; averaged over problems.
  A problem whose first k samples gave no answer counts as wrong.
- pass@k, k = 1..G: the unbiased estimator 1 - C(n-c, k)/C(n, k) (Codex paper, lighteval PassAtK).

Intervals (95 %): maj@k is a proportion of problems, so it gets the Wilson score interval over
problems. pass@1 and pass@k are means of per-problem fractions, so they get a seeded percentile
bootstrap over problems (resampling problems, not samples; ``n_bootstrap`` draws, ``seed``) -- except
where every per-problem value is 0 or 1 (G = 1, or every problem all right or all wrong): that mean is a
proportion of problems, and gets Wilson too. So a 0 % or 100 % figure gets a real interval (Wilson 0/10 is
[0, 0.2775]; a bootstrap of ten zeros is [0, 0]), and at G = 1, where pass@1, pass@k at k = 1 and maj@1
are one figure, they print one interval.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from edgekv.errors import SpecError
from edgekv.eval.equivalence import group_votes

Z95 = 1.959963984540054  # the normal quantile for a two-sided 95 % interval
DEFAULT_BOOTSTRAP = 1000


@dataclass(frozen=True, slots=True)
class ProblemRecord:
    """One problem's G samples: extracted answers, correctness, generated tokens, cut at the budget.

    ``vote_group[i]`` labels sample i's equivalence group (groups numbered by their earliest sample;
    None: no answer); build it with ``from_samples``.
    """

    problem_id: str
    answers: tuple[str | None, ...]
    correct: tuple[bool, ...]
    n_tokens: tuple[int, ...]
    cut: tuple[bool, ...]
    vote_group: tuple[int | None, ...]

    def __post_init__(self) -> None:
        n = len(self.answers)
        if n == 0:
            raise SpecError(f"problem {self.problem_id} has no samples")
        if {len(self.correct), len(self.n_tokens), len(self.cut), len(self.vote_group)} != {n}:
            raise SpecError(f"problem {self.problem_id}: per-sample fields differ in length")

    @classmethod
    def from_samples(
        cls,
        problem_id: str,
        *,
        answers: Sequence[str | None],
        correct: Sequence[bool],
        n_tokens: Sequence[int],
        cut: Sequence[bool],
        equivalent: Callable[[str, str], bool],
    ) -> ProblemRecord:
        """A record whose vote groups come from ``group_votes(answers, equivalent=...)``."""
        labels: list[int | None] = [None] * len(answers)
        groups = sorted(group_votes(answers, equivalent=equivalent), key=lambda g: g.first)
        for label, group in enumerate(groups):
            for i in group.indices:
                labels[i] = label
        return cls(problem_id, tuple(answers), tuple(correct), tuple(n_tokens), tuple(cut), tuple(labels))

    @property
    def n_samples(self) -> int:
        return len(self.answers)

    @property
    def n_correct(self) -> int:
        return sum(self.correct)

    def majority_correct(self, k: int) -> bool:
        """Whether the majority among the first ``k`` samples is correct (ties to the earliest sample)."""
        votes = Counter(g for g in self.vote_group[:k] if g is not None)
        if not votes:
            return False
        # labels number groups by earliest sample, so the smallest label breaks a tie
        best = min(votes, key=lambda g: (-votes[g], g))
        return self.correct[self.vote_group.index(best)]


@dataclass(frozen=True, slots=True)
class Estimate:
    """A metric and its 95 % interval."""

    value: float
    low: float
    high: float


@dataclass(frozen=True, slots=True)
class EvalSummary:
    """Metrics over all problems; ``maj_at_k[k-1]`` and ``pass_at_k[k-1]`` for k = 1..G."""

    n_problems: int
    n_samples: int
    pass_at_1: Estimate
    maj_at_k: tuple[Estimate, ...]
    pass_at_k: tuple[Estimate, ...]
    mean_tokens: float
    cut_fraction: float


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for ``n`` samples of which ``c`` are correct: 1 - C(n-c, k)/C(n, k)."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise SpecError(f"pass@k needs 0 <= c <= n and 1 <= k <= n; got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def wilson_interval(successes: int, n: int, *, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval for ``successes`` out of ``n`` (95 % by default)."""
    if n <= 0:
        raise SpecError("a Wilson interval needs at least one trial")
    p = successes / n
    denom = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, center - half), min(1.0, center + half)


def bootstrap_interval(
    values: Sequence[float], *, n_bootstrap: int = DEFAULT_BOOTSTRAP, seed: int = 0
) -> tuple[float, float]:
    """A percentile bootstrap 95 % interval for the mean of ``values`` (resampled with a seeded RNG)."""
    return _bootstrap(values, _draws(len(values), n_bootstrap=n_bootstrap, seed=seed))


def _draws(n: int, *, n_bootstrap: int, seed: int) -> list[list[int]]:
    rng = random.Random(seed)
    return [[rng.randrange(n) for _ in range(n)] for _ in range(n_bootstrap)]


def _bootstrap(values: Sequence[float], draws: list[list[int]]) -> tuple[float, float]:
    if not values:
        raise SpecError("a bootstrap interval needs at least one value")
    means = sorted(sum(values[i] for i in idx) / len(idx) for idx in draws)
    lo = means[int(0.025 * (len(means) - 1))]
    hi = means[math.ceil(0.975 * (len(means) - 1))]
    return lo, hi


def summarize(records: Sequence[ProblemRecord], *, n_bootstrap: int = DEFAULT_BOOTSTRAP, seed: int = 0) -> EvalSummary:
    """pass@1, maj@k and pass@k for k = 1..G with 95 % intervals, mean tokens and the cut fraction."""
    if not records:
        raise SpecError("no problems to summarize")
    g = records[0].n_samples
    if any(r.n_samples != g for r in records):
        sizes = sorted({r.n_samples for r in records})
        raise SpecError(f"every problem needs the same number of samples; got {sizes}")
    n = len(records)
    draws = _draws(n, n_bootstrap=n_bootstrap, seed=seed)

    def proportion(successes: int) -> Estimate:
        lo, hi = wilson_interval(successes, n)
        return Estimate(successes / n, lo, hi)

    def mean_estimate(values: list[float]) -> Estimate:
        if all(v in (0.0, 1.0) for v in values):  # a proportion of problems (module docstring)
            return proportion(sum(v == 1.0 for v in values))
        lo, hi = _bootstrap(values, draws)
        return Estimate(sum(values) / n, lo, hi)

    pass1 = mean_estimate([r.n_correct / g for r in records])
    maj = tuple(proportion(sum(r.majority_correct(k) for r in records)) for k in range(1, g + 1))
    passk = tuple(mean_estimate([pass_at_k(g, r.n_correct, k) for r in records]) for k in range(1, g + 1))
    tokens = [t for r in records for t in r.n_tokens]
    cuts = [c for r in records for c in r.cut]
    return EvalSummary(n, g, pass1, maj, passk, sum(tokens) / len(tokens), sum(cuts) / len(cuts))
