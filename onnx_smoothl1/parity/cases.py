"""The parity grid: shapes x dtypes x betas x reductions, and each case's inputs.

The inputs are deterministic (seeded by the case's shape), so two runs of the same grid feed
every runtime the same numbers: a verdict can only change when a runtime does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .. import oracle, spec

#: label -> (input shape, target shape). Rank 0, size 1, empty (1-D and 3-D), odd sizes,
#: numpy broadcasting, and one size large enough for a multi-block / multithreaded kernel.
SHAPES: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "rank0": ((), ()),
    "one": ((1,), (1,)),
    "empty": ((0,), (0,)),
    "empty3d": ((2, 0, 3), (2, 0, 3)),
    "3x4x5": ((3, 4, 5), (3, 4, 5)),
    "broadcast": ((4, 1, 3), (5, 3)),
    "odd": ((7, 129), (7, 129)),
    "large": ((2**17 + 3,), (2**17 + 3,)),
    "nonfinite": ((16,), (16,)),
}
#: beta == 0 (plain L1), a beta not exact in float32, the default, and a large one.
BETAS: tuple[float, ...] = (0.0, 0.3, 1.0, 7.5)
DTYPES: tuple[str, ...] = tuple(spec.DTYPES)

#: A smaller grid for quick checks and the test suite.
QUICK_SHAPES: tuple[str, ...] = ("rank0", "empty", "broadcast", "odd", "nonfinite")
QUICK_BETAS: tuple[float, ...] = (0.0, 1.0)


@dataclass(frozen=True)
class Case:
    """One grid cell input: a shape label of ``SHAPES``, a dtype name, beta, reduction."""

    shape: str
    dtype: str
    beta: float
    reduction: str

    @property
    def shapes(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        return SHAPES[self.shape]

    @property
    def label(self) -> str:
        return f"{self.shape}/{self.dtype}/beta={self.beta:g}/{self.reduction}"

    @property
    def name(self) -> str:
        """The label as a directory name (``--write-cases``): letters, digits, '_' only."""
        beta = f"{self.beta:g}".replace(".", "p").replace("-", "m").replace("+", "")
        return f"test_smoothl1_{self.shape}_{self.dtype}_beta{beta}_{self.reduction}"


def grid(
    dtypes: Sequence[str] = DTYPES,
    *,
    shapes: Sequence[str] | None = None,
    betas: Sequence[float] | None = None,
    reductions: Sequence[str] = spec.REDUCTIONS,
    quick: bool = False,
) -> list[Case]:
    """The cases: every shape x dtype x beta x reduction (``quick`` takes a subset)."""
    shape_list = list(shapes) if shapes is not None else list(QUICK_SHAPES if quick else SHAPES)
    beta_list = list(betas) if betas is not None else list(QUICK_BETAS if quick else BETAS)
    for s in shape_list:
        if s not in SHAPES:
            raise ValueError(f"shapes: unknown shape {s!r}; choose from {', '.join(SHAPES)}")
    dtype_list = [spec.check_dtype(d, name="dtypes") for d in dtypes]
    for r in reductions:
        spec.check_reduction(r)
    return [
        Case(s, d, spec.check_beta(b), r)
        for d in dtype_list
        for s in shape_list
        for b in beta_list
        for r in reductions
    ]


def make_inputs(case: Case, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Inputs whose |x - y| spans ~1e-4 .. ~20, so every beta in BETAS splits them.

    The ``nonfinite`` shape also holds NaN, +-inf and +-0 (in both inputs, inf - inf too).
    """
    sx, sy = case.shapes
    rng = np.random.default_rng([seed, list(SHAPES).index(case.shape)])
    npdt = oracle.NUMPY_DTYPES[case.dtype]
    scale = np.exp(rng.uniform(np.log(1e-4), np.log(10.0), size=sx))
    x = np.asarray(rng.standard_normal(sx) * scale)
    y = np.asarray(rng.standard_normal(sy) * 2.0)
    if case.shape == "nonfinite":
        x[:6] = [np.nan, np.inf, -np.inf, 0.0, -0.0, np.inf]
        y[:6] = [1.0, 2.0, 3.0, -0.0, 0.0, np.inf]  # last pair: inf - inf = NaN
        y[7] = np.nan
    return x.astype(npdt), y.astype(npdt)


def dtype_name(array: np.ndarray) -> str:
    """The ``spec.DTYPES`` name of an array's element type ('' for any other type)."""
    dtype = np.asarray(array).dtype
    return next((k for k, v in oracle.NUMPY_DTYPES.items() if v == dtype), "")
