"""The parity grid: shapes x dtypes x (loss, parameter) x reductions, and each case's inputs.

Both losses of SPEC run through the grid: ``SmoothL1Loss`` over ``BETAS`` and ``HuberLoss``
over ``DELTAS``. A case keeps its loss parameter in ``beta`` whatever the loss (``oracle``'s
reference functions take it the same way), and ``loss`` says which one it is.

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

#: HuberLoss's delta (> 0): one not exact in float32 and below most |x - y|, the default,
#: and one above most of them (both branches of the formula in every case).
DELTAS: tuple[float, ...] = (0.35, 1.0, 2.5)
#: The losses, as ``oracle``/``spec.LOSSES`` name them, in report order.
LOSSES: tuple[str, ...] = tuple(spec.LOSSES)

#: A smaller grid for quick checks and the test suite.
QUICK_SHAPES: tuple[str, ...] = ("rank0", "empty", "broadcast", "odd", "nonfinite")
QUICK_BETAS: tuple[float, ...] = (0.0, 1.0)
#: The quick grid's Huber subset: one delta not exact in float32 (where a runtime that
#: rounds differently shows), on fewer shapes (the test suite runs the quick grid twice).
QUICK_DELTAS: tuple[float, ...] = (0.35,)
QUICK_HUBER_SHAPES: tuple[str, ...] = ("rank0", "broadcast", "odd", "nonfinite")

#: The parameter's name per loss (the node attribute).
PARAM_NAMES: dict[str, str] = {
    loss: spec.LOSS_PARAMS[op_type] for loss, op_type in spec.LOSSES.items()
}


@dataclass(frozen=True)
class Case:
    """One grid cell input: a shape label of ``SHAPES``, a dtype name, the loss parameter
    (``beta`` for 'smooth_l1', delta for 'huber'), reduction, and the loss."""

    shape: str
    dtype: str
    beta: float
    reduction: str
    loss: str = "smooth_l1"

    @property
    def shapes(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        return SHAPES[self.shape]

    @property
    def op_type(self) -> str:
        """The node's op type (``SmoothL1Loss`` or ``HuberLoss``)."""
        return spec.LOSSES[self.loss]

    @property
    def param_name(self) -> str:
        """The loss parameter's attribute name: 'beta' or 'delta'."""
        return PARAM_NAMES[self.loss]

    @property
    def key(self) -> tuple[str, float, str, str]:
        """(loss, parameter, reduction, dtype): what the case's one-node model depends on
        (the paths cache sessions and conversions by it)."""
        return (self.loss, self.beta, self.reduction, self.dtype)

    @property
    def oracle_args(self) -> dict[str, object]:
        """Keyword arguments of ``oracle.reference``/``torch_same_dtype`` for this case."""
        return {"beta": self.beta, "reduction": self.reduction, "loss": self.loss}

    @property
    def label(self) -> str:
        """``shape/dtype/beta=0.3/mean``; Huber cases name the loss:
        ``shape/dtype/huber delta=0.35/mean``."""
        param = f"{self.param_name}={self.beta:g}"
        if self.loss != "smooth_l1":
            param = f"{self.loss} {param}"
        return f"{self.shape}/{self.dtype}/{param}/{self.reduction}"

    @property
    def name(self) -> str:
        """The label as a directory name (``--write-cases``): letters, digits, '_' only."""
        value = f"{self.beta:g}".replace(".", "p").replace("-", "m").replace("+", "")
        prefix = "smoothl1" if self.loss == "smooth_l1" else self.loss
        return f"test_{prefix}_{self.shape}_{self.dtype}_{self.param_name}{value}_{self.reduction}"


def grid(
    dtypes: Sequence[str] = DTYPES,
    *,
    shapes: Sequence[str] | None = None,
    betas: Sequence[float] | None = None,
    reductions: Sequence[str] = spec.REDUCTIONS,
    quick: bool = False,
    losses: Sequence[str] = LOSSES,
    deltas: Sequence[float] | None = None,
) -> list[Case]:
    """The cases: every shape x dtype x beta x reduction of SmoothL1Loss, then every shape x
    dtype x delta x reduction of HuberLoss (``losses`` selects; ``quick`` takes a subset,
    and its Huber part fewer shapes, unless ``shapes`` is given)."""
    loss_list = [spec.check_loss(loss, name="losses") for loss in losses]
    if not loss_list:
        raise ValueError("losses: choose at least one of " + ", ".join(LOSSES))
    shape_list = list(shapes) if shapes is not None else list(QUICK_SHAPES if quick else SHAPES)
    huber_shapes = list(shapes) if shapes is not None else list(QUICK_HUBER_SHAPES if quick else SHAPES)
    beta_list = list(betas) if betas is not None else list(QUICK_BETAS if quick else BETAS)
    delta_list = list(deltas) if deltas is not None else list(QUICK_DELTAS if quick else DELTAS)
    for s in shape_list:
        if s not in SHAPES:
            raise ValueError(f"shapes: unknown shape {s!r}; choose from {', '.join(SHAPES)}")
    dtype_list = [spec.check_dtype(d, name="dtypes") for d in dtypes]
    for r in reductions:
        spec.check_reduction(r)
    params = {
        "smooth_l1": (shape_list, [spec.check_beta(b, name="betas") for b in beta_list]),
        "huber": (huber_shapes, [spec.check_delta(d, name="deltas") for d in delta_list]),
    }
    return [
        Case(s, d, p, r, loss)
        for loss in LOSSES
        if loss in loss_list
        for d in dtype_list
        for s in params[loss][0]
        for p in params[loss][1]
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
