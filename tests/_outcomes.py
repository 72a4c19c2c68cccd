"""Helper for tests/test_precision.py and tests/test_xla.py: does an attack run on another
numeric path (a half-precision model, XLA) reach the float32 run's per-sample outcomes on
every sample whose outcome that path cannot legitimately change?

Another numeric path may flip a sample's outcome, with nothing wrong, in two ways; the
tolerance is measured from both in the same run, on the machine that runs the test:

- **The path.** An attack's iterates depend on rounding (a gradient's sign, a ReLU, an
  argmax, which iterate is best so far), and under XLA even the random start differs. A
  sample that float32 runs with different seeds sometimes fool and sometimes do not
  (*undecided*) can go either way: it is not compared. A sample that all `SEEDS` float32 runs
  agree on (*decided*) can still flip if the other run is, at worst, one more independent
  run: by exchangeability, P(the first K agree and run K+1 differs) = P(exactly one of K+1
  runs is the odd one out) / (K+1) <= P(the first K do not agree) / K. So the expected number
  of decided samples that flip is at most lam = undecided / K, and the allowance is the
  smallest count that a Poisson(lam) variable (whose tail bounds that of a sum of independent
  Bernoullis with mean lam; Hoeffding 1956) exceeds with probability below `P_FALSE_ALARM`.
  (A half-precision run starts where float32 seed 0 starts, so it is closer to that run than
  an independent one: the bound is conservative. XLA draws other random starts.)
- **The verdict.** At the same input, the two paths' logits differ by rounding. A sample
  whose logit margin (true class minus the best other class) at an attack's output is within
  `VERDICT_SAFETY` times the largest margin discrepancy measured between the two paths at the
  same inputs (clean and adversarial) is *on the edge*: not compared. The factor covers inputs
  the measurement does not see (the iterates the attack judged on its way).

Everything else must agree; and the samples compared must include more float32-fooled,
clean-correct samples than the allowance, so that an attack that does nothing (or returns
the clean inputs) fails the comparison.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import numpy as np

import advgrad

SEEDS = 8  # float32 runs that find the undecided samples
P_FALSE_ALARM = 1e-3  # chance that a correct path fails on the path allowance alone
VERDICT_SAFETY = 2.0


def margins(forward: Callable[[np.ndarray], np.ndarray], x: np.ndarray, y: np.ndarray):
    """Per-sample logit margin (true class minus the best other class) in float64."""
    z = np.asarray(forward(x), np.float64)
    rows = np.arange(len(y))
    true = z[rows, y]
    z[rows, y] = -np.inf
    return true - z.max(axis=1)


def predictor(model) -> Callable[[np.ndarray], np.ndarray]:
    """The model's logits as advgrad reads them (float32, whatever the model's policy)."""
    return lambda x: advgrad.predictions.predict(model, x)


def path_allowance(undecided: int, seeds: int = SEEDS) -> int:
    """Smallest a with P(Poisson(undecided / seeds) > a) < P_FALSE_ALARM."""
    lam = undecided / seeds
    a, term = 0, math.exp(-lam)
    cdf = term
    while 1.0 - cdf >= P_FALSE_ALARM:
        a += 1
        term *= lam / a
        cdf += term
    return a


@dataclasses.dataclass
class Agreement:
    """Per-sample comparison of another run with float32 seed 0 (`reference`)."""

    reference: np.ndarray  # float32 seed 0: robust per sample
    robust: np.ndarray  # the other run: robust per sample
    clean_correct: np.ndarray  # float32 on the clean inputs
    undecided: np.ndarray  # float32 seeds do not agree
    on_edge: np.ndarray  # a margin within the rounding band
    excused: np.ndarray  # excused by the caller, for a stated reason
    band: float  # the verdict band, in logits
    allowance: int

    @property
    def compared(self) -> np.ndarray:
        return ~(self.undecided | self.on_edge | self.excused)

    @property
    def disagree(self) -> np.ndarray:
        return self.compared & (self.robust != self.reference)

    @property
    def power(self) -> int:
        """Compared samples an attack that does nothing would get wrong."""
        return int(np.sum(self.compared & ~self.reference & self.clean_correct))

    def summary(self) -> str:
        return (
            f"robust float32 {int(self.reference.sum())}, other {int(self.robust.sum())}; "
            f"undecided {int(self.undecided.sum())}, on the edge {int(self.on_edge.sum())} "
            f"(band {self.band:.3g}), excused {int(self.excused.sum())}; "
            f"compared {int(self.compared.sum())} (fooled, clean-correct {self.power}), "
            f"disagree {int(self.disagree.sum())} {np.flatnonzero(self.disagree).tolist()}, "
            f"allowance {self.allowance}"
        )

    def check(self) -> None:
        assert self.power > self.allowance, (
            "too few fooled samples compared to tell an attack that does nothing: " + self.summary()
        )
        assert self.disagree.sum() <= self.allowance, self.summary()


def compare(
    reference: Callable[[np.ndarray], np.ndarray],
    other: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    y: np.ndarray,
    references: Sequence[np.ndarray],
    x_adv: np.ndarray,
    excused: np.ndarray | None = None,
) -> Agreement:
    """Compare another run of an attack with float32 runs of it.

    Args:
        reference: The float32 path's logits (`predictor`).
        other: The other path's logits.
        x, y: The clean inputs and their labels.
        references: The float32 runs' outputs, seeds 0 .. K - 1 (seed 0 first).
        x_adv: The other run's output.
        excused: Samples not compared, for a reason the caller states.
    """
    n = len(y)
    runs = np.array([margins(reference, r, y) > 0 for r in references])
    undecided = runs.any(axis=0) & ~runs.all(axis=0)
    # Both paths on the same inputs: the clean ones, float32 seed 0's output and the other's.
    points, labels = np.concatenate([x, references[0], x_adv]), np.concatenate([y, y, y])
    single, own = margins(reference, points, labels), margins(other, points, labels)
    band = VERDICT_SAFETY * np.max(np.abs(single - own))
    clean, at_reference, at_other = single[:n], single[n : 2 * n], own[2 * n :]
    return Agreement(
        reference=runs[0],
        robust=at_other > 0,
        clean_correct=clean > 0,
        undecided=undecided,
        on_edge=(np.abs(at_reference) <= band) | (np.abs(at_other) <= band),
        excused=np.zeros(n, bool) if excused is None else excused,
        band=float(band),
        allowance=path_allowance(int(undecided.sum()), len(references)),
    )
