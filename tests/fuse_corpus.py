"""The hand-written-loss corpus of issue 24: real libraries' smooth-L1 / Huber / L1 formulas,
translated op for op into torch, and near-misses that must never fuse.

Why a corpus: most models that carry a smooth-L1 or Huber loss do not call
``F.smooth_l1_loss``; detection and RL code and Keras/TF/JAX ports write the formula by hand,
each a little differently (``<`` or ``<=``, ``Where`` or a float mask, ``Min``/``Clip``,
``Pow`` of the signed difference, the threshold on ``1/sigma^2``...). ``fuse`` is only as good as
the forms it meets, so the cases here are copied from the libraries' own source, not invented.
``tests/test_fuse_corpus.py`` asserts each one; ``benchmarks/fuse_corpus.py`` prints the table
of docs/export.md ("Hand-written losses: the corpus"). Nothing here imports the recognizer:
the cases are data, written against the public API only, so they measure it.

Each case is a ``torch.nn.Module``: ``Linear -> formula(pred, target)``. The Linear is the
identity (weight I, bias 0) so that an input ``x`` *is* the prediction bit for bit: the edge
inputs can then put a difference exactly at +-beta (or 0, huge, tiny, inf) and the graph sees
exactly that value. It is still a real ``Gemm``/``MatMul`` in every export.

Expected-node convention
------------------------
Each expected node is ``Loss(kind, param, reduction)``:

* The per-element core ``c * f(d)`` of a difference ``d = a - b``. If it equals SmoothL1(beta)(d)
  exactly: ``("smooth_l1", beta)``; if it equals Huber(delta)(d) = delta * SmoothL1(delta)(d):
  ``("huber", delta)``. When beta = delta = 1 both node types are the same function, and either
  op type is accepted. A scale baked into the branches (c * SmoothL1(beta), c not in {1, beta})
  is ``("either", beta)``: either op type with param beta. A constant factor applied *after*
  the core (``loss_weight * loss``) or a data-dependent weight stays outside the node.
* ``("l1", 0)`` is ``SmoothL1Loss(beta=0)``; it counts only where a full mean/sum follows the
  ``|a - b|`` directly (``fuse``'s default ``l1="reduced"``): a weighted L1 expects no node.
* Reduction: ``"mean"``/``"sum"`` only when the core is directly followed by a mean/sum over ALL
  its elements (``x.mean()``, ``x.sum()``, ``x.mean(-1)`` of a 1-D ``x``); otherwise ``"none"``
  (a mean over some dims, ``sum * weight``, ``sum / avg_factor`` after a weight, ...). Where
  an exporter may legitimately drop an identity between core and reduction (``losses * 1.0``,
  TF's ``compute_weighted_loss`` with its default scalar weight), ``reduction`` is a tuple of
  the accepted values, with the reason in the case's note.
* Kinds map to nodes: smooth_l1 -> ``SmoothL1Loss(beta)``, huber -> ``HuberLoss(delta)``,
  l1 -> ``SmoothL1Loss(beta=0)``; params compare as float32 (ONNX FLOAT attributes).

Parameters that float32 cannot hold (decided, not assumed). A float32 graph stores every
constant in float32, so ``beta = 1/9`` written as ``0.5 * n**2 / beta`` and ``n - 0.5 * beta``
*is* SmoothL1(float32(1/9)) computed in float32 exactly as torch computes it: such cases expect
a node with ``param = float32(1/9)``. Where a library folds the parameter into another
constant in float64 first (the sigma form with sigma = 3: ``4.5 * e**2`` below
``float32(1/9)``), that constant is the float32 rounding of the one SmoothL1(float32(1/9))
needs (0.5 / float32(1/9) = 4.4999999665, 0.11 unit roundoffs from 4.5): decided (lead), a
node, as for every constant within rounding (fuse's proof allows 1.5 unit roundoffs). A
float64 copy of a 1/9 case expects none (``inexact=True``: its constants are float64 1/9,
which the FLOAT attribute cannot hold).

``read=True`` marks citations whose source text was read through the code search while the
case was written (the formula copied from it); the others are cited from the library's
well-known code and say so in the note.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

Tensor = torch.Tensor
Formula = Callable[[Tensor, Tensor], Tensor]

SMOOTH_L1, HUBER, DOMAIN = "SmoothL1Loss", "HuberLoss", "onnx_smoothl1"


@dataclass(frozen=True)
class Loss:
    """One expected loss node (see the module docstring for the convention)."""

    kind: str  # "smooth_l1" | "huber" | "either" | "l1"
    param: float
    reduction: str | tuple[str, ...]

    def accepts(self, op_type: str, param: float, reduction: str) -> bool:
        """Does node (op_type, its beta/delta, reduction) satisfy this expectation?"""
        reductions = (self.reduction,) if isinstance(self.reduction, str) else self.reduction
        if reduction not in reductions:
            return False
        want = float(np.float32(self.param))
        if float(np.float32(param)) != want:
            return False
        if self.kind == "l1":
            return op_type == SMOOTH_L1 and want == 0.0
        if self.kind == "either" or want == 1.0:
            return op_type in (SMOOTH_L1, HUBER)
        return op_type == (SMOOTH_L1 if self.kind == "smooth_l1" else HUBER)

    def __str__(self) -> str:
        red = self.reduction if isinstance(self.reduction, str) else "|".join(self.reduction)
        return f"{self.kind}({float(np.float32(self.param)):g},{red})"


def matched(expected: Sequence[Loss], found: Sequence[tuple[str, float, str]]) -> int:
    """How many of ``expected`` the ``found`` nodes (op_type, param, reduction) cover, each node
    used once: a bipartite matching by augmenting paths, so overlapping expectations (an
    "either" next to a "smooth_l1" of the same beta) cannot make a greedy choice miss one."""
    owner: dict[int, int] = {}

    def assign(i: int, seen: set[int]) -> bool:
        for j, node in enumerate(found):
            if j in seen or not expected[i].accepts(*node):
                continue
            seen.add(j)
            if j not in owner or assign(owner[j], seen):
                owner[j] = i
                return True
        return False

    return sum(assign(i, set()) for i in range(len(expected)))


def matches(expected: Sequence[Loss], found: Sequence[tuple[str, float, str]]) -> bool:
    """Is ``found`` exactly the multiset ``expected``?"""
    return len(expected) == len(found) and matched(expected, found) == len(expected)


@dataclass(frozen=True)
class Case:
    """A real library's loss: its citation, the torch translation, inputs, expected nodes."""

    name: str
    library: str
    source: str  # "owner/repo path function"
    url: str
    formula: Formula
    expected: tuple[Loss, ...]
    shapes: tuple[tuple[int, ...], tuple[int, ...]] = ((8, 4), (8, 4))  # pred, target
    dtype: str = "float32"
    threshold: float = 1.0  # where the edge inputs put |d| (beta, delta, 1/sigma^2)
    note: str = ""
    read: bool = False
    inexact: bool = False  # the parameter float32 cannot hold: expected no node
    float_mask: bool = False  # branches selected by multiplying with a float mask (0 * inf)
    real: bool = True  # False: a form the issue lists, no library source found for it
    torch_call: bool = False  # calls torch's own loss (F.smooth_l1_loss, F.l1_loss, nn.L1Loss)
    #: (exporter, expected) where one exporter's graph differs from the module (torch's dynamo
    #: exporter writes a float64 model's Python-float constants rounded to float32).
    per_exporter: tuple[tuple[str, tuple[Loss, ...]], ...] = ()

    def expected_for(self, exporter: str) -> tuple[Loss, ...]:
        return dict(self.per_exporter).get(exporter, self.expected)


@dataclass(frozen=True)
class NearMiss:
    """A formula that looks like a smooth-L1/Huber/L1 loss but is not one: must never fuse."""

    name: str
    reason: str
    formula: Formula
    shapes: tuple[tuple[int, ...], tuple[int, ...]] = ((8, 4), (8, 4))
    threshold: float = 1.0
    source: str = ""
    dtype: str = "float32"
    float_mask: bool = False
    #: (exporter, why this near-miss is none there): torch writes another graph than the module.
    not_for: tuple[tuple[str, str], ...] = ()


class LinearLoss(torch.nn.Module):
    """``Linear -> formula(pred, target)``; the Linear is the identity (see module docstring)."""

    def __init__(self, features: int, formula: Formula):
        super().__init__()
        self.net = torch.nn.Linear(features, features)
        with torch.no_grad():
            self.net.weight.copy_(torch.eye(features))
            self.net.bias.zero_()
        self.formula = formula

    def forward(self, x: Tensor, target: Tensor) -> Tensor:
        return self.formula(self.net(x), target)


def make_module(case: Case | NearMiss) -> torch.nn.Module:
    dtype = getattr(torch, case.dtype)
    return LinearLoss(case.shapes[0][-1], case.formula).to(dtype).eval()


def sl1(beta: float, reduction: str | tuple[str, ...]) -> Loss:
    return Loss("smooth_l1", beta, reduction)


def hub(delta: float, reduction: str | tuple[str, ...]) -> Loss:
    return Loss("huber", delta, reduction)


def l1(reduction: str) -> Loss:
    return Loss("l1", 0.0, reduction)


def _const(value: float, like: Tensor) -> Tensor:
    return torch.tensor(value, dtype=like.dtype)


# --- library formulas, op for op ----------------------------------------------------------


def fvcore_smooth_l1(beta: float, reduction: str) -> Formula:
    """fvcore/nn/smooth_l1_loss.py smooth_l1_loss (detectron2's box regression calls it)."""

    def f(input: Tensor, target: Tensor) -> Tensor:
        if beta < 1e-5:
            loss = torch.abs(input - target)
        else:
            n = torch.abs(input - target)
            cond = n < beta
            loss = torch.where(cond, 0.5 * n**2 / beta, n - 0.5 * beta)
        if reduction == "mean":
            loss = loss.mean()
        elif reduction == "sum":
            loss = loss.sum()
        return loss

    return f


def mmdet_weight_reduce(loss: Tensor, weight: Tensor | None, reduction: str, avg_factor: float | None) -> Tensor:
    """mmdet/models/losses/utils.py weight_reduce_loss (what @weighted_loss applies)."""
    if weight is not None:
        loss = loss * weight
    if avg_factor is None:
        if reduction == "mean":
            return loss.mean()
        if reduction == "sum":
            return loss.sum()
        return loss
    if reduction == "mean":
        eps = torch.finfo(torch.float32).eps
        return loss.sum() / (avg_factor + eps)
    if reduction != "none":
        raise ValueError('avg_factor can not be used with reduction="sum"')
    return loss


def mmdet_smooth_l1(beta: float, reduction: str, *, loss_weight: float = 1.0, weighted: bool = False,
                    avg_factor: float | None = None) -> Formula:
    """mmdet/models/losses/smooth_l1_loss.py smooth_l1_loss + SmoothL1Loss.forward."""

    def f(pred: Tensor, target: Tensor) -> Tensor:
        diff = torch.abs(pred - target)
        loss = torch.where(diff < beta, 0.5 * diff * diff / beta, diff - 0.5 * beta)
        # bbox_weights: 1 for positive anchors, 0 elsewhere (here: targets that are not padding)
        weight = (target.abs() < 3.0).to(pred.dtype) if weighted else None
        return loss_weight * mmdet_weight_reduce(loss, weight, reduction, avg_factor)

    return f


def mmdet_l1(reduction: str, *, loss_weight: float = 1.0, weighted: bool = False,
             avg_factor: float | None = None) -> Formula:
    """mmdet/models/losses/smooth_l1_loss.py l1_loss + L1Loss.forward."""

    def f(pred: Tensor, target: Tensor) -> Tensor:
        loss = torch.abs(pred - target)
        weight = (target.abs() < 3.0).to(pred.dtype) if weighted else None
        return loss_weight * mmdet_weight_reduce(loss, weight, reduction, avg_factor)

    return f


def torchvision_smooth_l1(beta: float, size_average: bool) -> Formula:
    """torchvision/models/detection/_utils.py smooth_l1_loss (torchvision 0.3-0.7; copied into
    many Faster R-CNN repos), ``torch.lt`` for the compare."""

    def f(input: Tensor, target: Tensor) -> Tensor:
        n = torch.abs(input - target)
        cond = torch.lt(n, beta)
        loss = torch.where(cond, 0.5 * n**2 / beta, n - 0.5 * beta)
        if size_average:
            return loss.mean()
        return loss.sum()

    return f


def faster_rcnn_sigma(sigma: float, *, inside_weights: bool = False) -> Formula:
    """jwyang/faster-rcnn.pytorch lib/model/utils/net_utils.py _smooth_l1_loss (py-faster-rcnn's
    sigma form, the same in tf-faster-rcnn): float mask ``Cast(Less)`` times each branch plus
    ``1 - mask``. bbox_inside/outside_weights are 1 for foreground boxes: omitted unless
    ``inside_weights`` (then a data tensor scales the difference itself)."""

    def f(bbox_pred: Tensor, bbox_targets: Tensor) -> Tensor:
        sigma_2 = sigma**2
        box_diff = bbox_pred - bbox_targets
        if inside_weights:
            in_box_diff = (bbox_targets > 0).to(box_diff.dtype) * box_diff
        else:
            in_box_diff = box_diff
        abs_in_box_diff = torch.abs(in_box_diff)
        smooth_l1_sign = (abs_in_box_diff < 1.0 / sigma_2).detach().float()
        in_loss_box = torch.pow(in_box_diff, 2) * (sigma_2 / 2.0) * smooth_l1_sign + (
            abs_in_box_diff - (0.5 / sigma_2)
        ) * (1.0 - smooth_l1_sign)
        loss_box = in_loss_box
        for i in sorted([1], reverse=True):
            loss_box = loss_box.sum(i)
        return loss_box.mean()

    return f


def keras3_huber(delta: float) -> Formula:
    """keras/src/losses/losses.py huber (Keras 3; torch backend ops): LessOrEqual, the square
    of the signed error, ``delta * |e| - 0.5 * delta**2``, mean over the last axis."""

    def f(y_pred: Tensor, y_true: Tensor) -> Tensor:
        d = _const(delta, y_pred)
        error = torch.subtract(y_pred, y_true)
        abs_error = torch.abs(error)
        half = _const(0.5, abs_error)
        return torch.mean(
            torch.where(abs_error <= d, half * torch.square(error), d * abs_error - half * torch.square(d)),
            dim=-1,
        )

    return f


def keras3_mae(y_pred: Tensor, y_true: Tensor) -> Tensor:
    """keras/src/losses/losses.py mean_absolute_error: mean(abs(y_true - y_pred), axis=-1)."""
    return torch.mean(torch.abs(y_true - y_pred), dim=-1)


def tf_min_huber(delta: float) -> Callable[[Tensor, Tensor], Tensor]:
    """tensorflow/python/ops/losses/losses_impl.py huber_loss (tf.compat.v1.losses), also TF
    2.0-2.3 tf.keras.losses.huber: Min of |e| and delta, ``0.5 * q * q + delta * (|e| - q)``."""

    def core(predictions: Tensor, labels: Tensor) -> Tensor:
        error = torch.subtract(predictions, labels)
        abs_error = torch.abs(error)
        quadratic = torch.minimum(abs_error, _const(delta, abs_error))
        linear = torch.subtract(abs_error, quadratic)
        return torch.add(torch.multiply(_const(0.5, quadratic), torch.multiply(quadratic, quadratic)),
                         torch.multiply(_const(delta, linear), linear))

    return core


def optax_huber(delta: float, *, clip: bool = False) -> Formula:
    """optax/losses/_regression.py huber_loss (rlax and trfl have the same body):
    ``q = minimum(|e|, delta); 0.5 * q**2 + delta * (|e| - q)``. ``clip``: the PyTorch
    ports' ``clamp(max=delta)`` (an ONNX Clip) for jnp.minimum."""

    def f(predictions: Tensor, targets: Tensor) -> Tensor:
        errors = predictions - targets
        abs_errors = torch.abs(errors)
        quadratic = abs_errors.clamp(max=delta) if clip else torch.minimum(abs_errors, _const(delta, abs_errors))
        linear = abs_errors - quadratic
        return 0.5 * quadratic**2 + delta * linear

    return f


def dopamine_jax_huber(delta: float) -> Formula:
    """dopamine/jax/losses.py huber_loss: ``0.5 * delta**2 + delta * (x - delta)`` above."""

    def f(targets: Tensor, predictions: Tensor) -> Tensor:
        x = torch.abs(targets - predictions)
        return torch.where(x <= delta, 0.5 * x**2, 0.5 * delta**2 + delta * (x - delta))

    return f


def baselines_huber(x: Tensor, delta: float = 1.0) -> Tensor:
    """openai/baselines baselines/common/tf_util.py huber_loss: Abs twice, square of signed x."""
    return torch.where(torch.abs(x) < delta, torch.square(x) * 0.5, delta * (torch.abs(x) - 0.5 * delta))


def keras_rl_huber(y_true: Tensor, y_pred: Tensor, clip_value: float) -> Tensor:
    """keras-rl/keras-rl rl/util.py huber_loss (tf backend branch)."""
    x = y_true - y_pred
    condition = torch.abs(x) < clip_value
    squared_loss = 0.5 * torch.square(x)
    linear_loss = clip_value * (torch.abs(x) - 0.5 * clip_value)
    return torch.where(condition, squared_loss, linear_loss)


def sb3_quantile_huber(current_quantiles: Tensor, target_quantiles: Tensor) -> Tensor:
    """sb3_contrib/common/utils.py quantile_huber_loss (QR-DQN, TQC): ``>`` with the branches
    swapped, the square of the signed pairwise difference, a data-dependent weight."""
    n_quantiles = current_quantiles.shape[-1]
    cum_prob = (torch.arange(n_quantiles, dtype=torch.float) + 0.5) / n_quantiles
    cum_prob = cum_prob.view(1, -1, 1)
    pairwise_delta = target_quantiles.unsqueeze(-2) - current_quantiles.unsqueeze(-1)
    abs_pairwise_delta = torch.abs(pairwise_delta)
    huber_loss = torch.where(abs_pairwise_delta > 1, abs_pairwise_delta - 0.5, pairwise_delta**2 * 0.5)
    return (torch.abs(cum_prob - (pairwise_delta.detach() < 0).float()) * huber_loss).mean()


def dopamine_quantile(kappa: float, *, implicit: bool) -> Formula:
    """dopamine/jax/agents/quantile/quantile_agent.py (QR-DQN) and
    implicit_quantile/implicit_quantile_agent.py (IQN, ``/ kappa``): two float masks, ``<=``
    and ``>``, each times its branch; a tau weight."""

    def f(chosen: Tensor, target: Tensor) -> Tensor:
        n = chosen.shape[-1]
        bellman_errors = target[:, None, :] - chosen[:, :, None]
        huber_loss = (torch.abs(bellman_errors) <= kappa).float() * 0.5 * bellman_errors**2 + (
            torch.abs(bellman_errors) > kappa
        ).float() * kappa * (torch.abs(bellman_errors) - 0.5 * kappa)
        tau_hat = (torch.arange(n, dtype=torch.float32) + 0.5) / n
        tau_bellman_diff = torch.abs(tau_hat[None, :, None] - (bellman_errors < 0).float())
        quantile_huber_loss = tau_bellman_diff * huber_loss
        if implicit:
            quantile_huber_loss = quantile_huber_loss / kappa
            loss = torch.sum(quantile_huber_loss, dim=2)
            loss = torch.sum(loss, dim=1)
            return torch.mean(loss)
        loss = torch.sum(torch.mean(quantile_huber_loss, 2), 1)
        return torch.mean(loss)

    return f


def chainer_huber(delta: float, *, full_sum: bool) -> Formula:
    """chainer.functions.huber_loss: y = diff**2; y -= (y > delta**2) * (|diff| - delta)**2;
    y *= 0.5; then sum along axis 1 (its default reduce) or, for 'no', the caller's sum."""
    def f(x0: Tensor, x1: Tensor) -> Tensor:
        diff = x0 - x1
        y = torch.square(diff)
        mask = (y > delta ** 2).to(y.dtype)
        y = 0.5 * (y - mask * torch.square(torch.abs(diff) - delta))
        return y.sum() if full_sum else y.sum(dim=1)
    return f


def _weights(like: Tensor, axis_shape: tuple[int, ...]) -> Tensor:
    """A fixed, non-uniform weight tensor (importance / anchor weights) of ``axis_shape``."""
    count = math.prod(axis_shape)
    return (0.5 + torch.arange(count, dtype=like.dtype) / count).reshape(axis_shape)


# --- the cases -----------------------------------------------------------------------------

FVCORE = ("facebookresearch/fvcore fvcore/nn/smooth_l1_loss.py smooth_l1_loss",
          "https://github.com/facebookresearch/fvcore/blob/main/fvcore/nn/smooth_l1_loss.py")
MMDET = ("open-mmlab/mmdetection mmdet/models/losses/smooth_l1_loss.py smooth_l1_loss, SmoothL1Loss",
         "https://github.com/open-mmlab/mmdetection/blob/main/mmdet/models/losses/smooth_l1_loss.py")
MMDET_L1 = ("open-mmlab/mmdetection mmdet/models/losses/smooth_l1_loss.py l1_loss, L1Loss",
            MMDET[1])
TV = ("pytorch/vision torchvision/models/detection/_utils.py smooth_l1_loss (0.3-0.7)",
      "https://github.com/pytorch/vision/blob/v0.5.0/torchvision/models/detection/_utils.py")
FRCNN = ("jwyang/faster-rcnn.pytorch lib/model/utils/net_utils.py _smooth_l1_loss",
         "https://github.com/jwyang/faster-rcnn.pytorch/blob/master/lib/model/utils/net_utils.py")
KERAS3 = ("keras-team/keras keras/src/losses/losses.py huber",
          "https://github.com/keras-team/keras/blob/master/keras/src/losses/losses.py")
TF1 = ("tensorflow/tensorflow tensorflow/python/ops/losses/losses_impl.py huber_loss",
       "https://github.com/tensorflow/tensorflow/blob/master/tensorflow/python/ops/losses/losses_impl.py")
TFK2 = ("tensorflow/tensorflow tensorflow/python/keras/losses.py huber_loss (TF 2.0-2.3)",
        "https://github.com/tensorflow/tensorflow/blob/r2.2/tensorflow/python/keras/losses.py")
CHAINER = ("chainer/chainer chainer/functions/loss/huber_loss.py HuberLoss.forward_cpu",
           "https://github.com/chainer/chainer/blob/master/chainer/functions/loss/huber_loss.py")
OPTAX = ("google-deepmind/optax optax/losses/_regression.py huber_loss",
         "https://github.com/google-deepmind/optax/blob/main/optax/losses/_regression.py")
DOPAMINE_Q = ("google/dopamine dopamine/jax/agents/quantile/quantile_agent.py train.loss_fn",
              "https://github.com/google/dopamine/blob/master/dopamine/jax/agents/quantile/quantile_agent.py")
DOPAMINE_IQN = ("google/dopamine dopamine/jax/agents/implicit_quantile/implicit_quantile_agent.py train.loss_fn",
                "https://github.com/google/dopamine/blob/master/dopamine/jax/agents/implicit_quantile/"
                "implicit_quantile_agent.py")
BASELINES = ("openai/baselines baselines/common/tf_util.py huber_loss; baselines/deepq/build_graph.py build_train",
             "https://github.com/openai/baselines/blob/master/baselines/common/tf_util.py")
KERAS_RL = ("keras-rl/keras-rl rl/util.py huber_loss; rl/agents/dqn.py clipped_masked_error",
            "https://github.com/keras-rl/keras-rl/blob/master/rl/util.py")
SB3C = ("Stable-Baselines-Team/stable-baselines3-contrib sb3_contrib/common/utils.py quantile_huber_loss",
        "https://github.com/Stable-Baselines-Team/stable-baselines3-contrib/blob/master/sb3_contrib/common/utils.py")
E = (1.0 / 9.0)
F32_E = float(np.float32(E))


def _cases() -> list[Case]:
    c: list[Case] = []

    def add(name: str, library: str, cite: tuple[str, str], formula: Formula, expected: Sequence[Loss],
            **kw) -> None:
        c.append(Case(name, library, cite[0], cite[1], formula, tuple(expected), **kw))

    # fvcore / detectron2 ------------------------------------------------------------------
    add("fvcore_beta1_none", "fvcore", FVCORE, fvcore_smooth_l1(1.0, "none"), [sl1(1, "none")], read=True)
    add("fvcore_beta0.5_mean", "fvcore", FVCORE, fvcore_smooth_l1(0.5, "mean"), [sl1(0.5, "mean")],
        threshold=0.5, read=True)
    add("fvcore_beta2_sum", "fvcore", FVCORE, fvcore_smooth_l1(2.0, "sum"), [sl1(2, "sum")], threshold=2.0,
        read=True)
    add("fvcore_beta0_l1_mean", "fvcore", FVCORE, fvcore_smooth_l1(0.0, "mean"), [l1("mean")], read=True,
        note="beta < 1e-5 takes fvcore's abs() path")
    add("fvcore_beta1/9_float32_mean", "fvcore", FVCORE, fvcore_smooth_l1(E, "mean"), [sl1(F32_E, "mean")],
        threshold=F32_E, read=True, note="beta 1/9 as float32 constants: SmoothL1(float32(1/9)) exactly")
    add("fvcore_beta1/9_float64_mean", "fvcore", FVCORE, fvcore_smooth_l1(E, "mean"), [], dtype="float64",
        threshold=E, read=True, inexact=True, per_exporter=(("dynamo", (sl1(F32_E, "mean"),)),),
        note="float64 graph: legacy writes the constants as float64 1/9, which a FLOAT beta cannot hold "
             "(no node); dynamo writes them rounded to float32 (scalar_tensor), so its graph is "
             "SmoothL1(float32(1/9)) exactly")
    add("fvcore_beta0.5_float16_mean", "fvcore (AMP)", FVCORE, fvcore_smooth_l1(0.5, "mean"), [sl1(0.5, "mean")],
        dtype="float16", threshold=0.5, read=True, note="detectron2 AMP training computes box losses in float16")
    add("detectron2_retinanet_beta0.1_sum_over_normalizer", "detectron2",
        ("facebookresearch/detectron2 detectron2/modeling/box_regression.py _dense_box_regression_loss; "
         "meta_arch/retinanet.py RetinaNet.losses",
         "https://github.com/facebookresearch/detectron2/blob/main/detectron2/modeling/box_regression.py"),
        lambda p, t: fvcore_smooth_l1(0.1, "sum")(p, t) / 100.0, [sl1(0.1, "sum")], threshold=0.1,
        note="SMOOTH_L1_LOSS_BETA 0.1; fg_mask indexing omitted (data-dependent shape); normalizer 100")
    add("detectron2_fast_rcnn_beta0_l1_sum", "detectron2",
        ("facebookresearch/detectron2 detectron2/modeling/roi_heads/fast_rcnn.py FastRCNNOutputLayers.box_reg_loss",
         "https://github.com/facebookresearch/detectron2/blob/main/detectron2/modeling/roi_heads/fast_rcnn.py"),
        lambda p, t: fvcore_smooth_l1(0.0, "sum")(p, t) / max(32, 1.0), [l1("sum")],
        note="SMOOTH_L1_BETA 0 (the default): fvcore's abs() path, / max(gt_classes.numel(), 1)")

    # mmdetection ----------------------------------------------------------------------------
    add("mmdet_smooth_l1_beta1_mean", "mmdetection", MMDET, mmdet_smooth_l1(1.0, "mean"), [sl1(1, "mean")],
        read=True, note="loss_weight 1.0 * mean")
    add("mmdet_smooth_l1_beta0.5_lw2_sum", "mmdetection", MMDET, mmdet_smooth_l1(0.5, "sum", loss_weight=2.0),
        [sl1(0.5, "sum")], threshold=0.5, read=True, note="loss_weight 2.0 stays outside the node")
    add("mmdet_smooth_l1_beta1/9_weighted_avg_factor", "mmdetection", MMDET,
        mmdet_smooth_l1(E, "mean", weighted=True, avg_factor=16.0), [sl1(F32_E, "none")], threshold=F32_E,
        read=True, note="RPN config beta=1/9: loss * bbox_weights, sum / (avg_factor + eps)")
    add("mmdet_smooth_l1_beta2_none", "mmdetection", MMDET, mmdet_smooth_l1(2.0, "none"), [sl1(2, "none")],
        threshold=2.0, read=True)
    add("mmdet_ssd_smooth_l1_beta1_avg_factor", "mmdetection",
        ("open-mmlab/mmdetection mmdet/models/dense_heads/ssd_head.py SSDHead.loss_single (smooth_l1_loss)",
         "https://github.com/open-mmlab/mmdetection/blob/main/mmdet/models/dense_heads/ssd_head.py"),
        mmdet_smooth_l1(1.0, "mean", avg_factor=32.0), [sl1(1, "sum")], read=True,
        note="smoothl1_beta 1.0, no bbox_weights given: sum / (avg_factor + eps)")
    add("mmdet_l1_mean", "mmdetection", MMDET_L1, mmdet_l1("mean"), [l1("mean")], read=True)
    add("mmdet_l1_lw5_weighted_avg_factor", "mmdetection", MMDET_L1,
        mmdet_l1("mean", loss_weight=5.0, weighted=True, avg_factor=8.0), [], read=True,
        note="DETR-style head: L1 under bbox_weights is not a loss node (l1='reduced')")
    add("mmdet_smooth_l1_beta0.25_float16_sum", "mmdetection (fp16)", MMDET, mmdet_smooth_l1(0.25, "sum"),
        [sl1(0.25, "sum")], dtype="float16", threshold=0.25, read=True, note="mmdet fp16 training")

    # torchvision / maskrcnn-benchmark --------------------------------------------------------
    add("torchvision_det_utils_beta1/9_sum", "torchvision", TV, torchvision_smooth_l1(E, False),
        [sl1(F32_E, "sum")], threshold=F32_E, read=True,
        note="rpn: size_average=False; text read from copies of the function (torch.lt form)")
    add("torchvision_det_utils_beta1/9_mean", "torchvision", TV, torchvision_smooth_l1(E, True),
        [sl1(F32_E, "mean")], threshold=F32_E, read=True)
    add("torchvision_fastrcnn_loss_F_beta1/9_sum", "torchvision",
        ("pytorch/vision torchvision/models/detection/roi_heads.py fastrcnn_loss",
         "https://github.com/pytorch/vision/blob/main/torchvision/models/detection/roi_heads.py"),
        lambda p, t: F.smooth_l1_loss(p, t, beta=1 / 9, reduction="sum") / 32, [sl1(F32_E, "sum")],
        threshold=F32_E, torch_call=True, note="F.smooth_l1_loss: torch's own decomposition (cited from memory)")
    add("maskrcnn_benchmark_beta1/9_sum", "maskrcnn-benchmark",
        ("facebookresearch/maskrcnn-benchmark maskrcnn_benchmark/layers/smooth_l1_loss.py smooth_l1_loss",
         "https://github.com/facebookresearch/maskrcnn-benchmark/blob/main/maskrcnn_benchmark/layers/smooth_l1_loss.py"),
        fvcore_smooth_l1(E, "sum"), [sl1(F32_E, "sum")], threshold=F32_E,
        note="`cond = n < beta` form, size_average=False (cited from memory; fvcore's body)")

    # py-faster-rcnn sigma form ---------------------------------------------------------------
    add("faster_rcnn_sigma1_rcnn", "faster-rcnn.pytorch", FRCNN, faster_rcnn_sigma(1.0), [sl1(1, "none")],
        read=True, float_mask=True, note="sigma 1 (RCNN head): SmoothL1(1); sum(dim=1).mean()")
    add("faster_rcnn_sigma2", "faster-rcnn.pytorch", FRCNN, faster_rcnn_sigma(2.0), [sl1(0.25, "none")],
        threshold=0.25, read=True, float_mask=True, note="sigma 2: 2*e^2 below 0.25, |e| - 0.125 = SmoothL1(0.25)")
    add("faster_rcnn_sigma3_rpn", "faster-rcnn.pytorch", FRCNN, faster_rcnn_sigma(3.0), [sl1(F32_E, "none")],
        threshold=F32_E, read=True, float_mask=True,
        note="sigma 3 (RPN): 4.5*e^2 below float32(1/9); 4.5 is 0.5/float32(1/9) rounded to float32 "
             "(0.11 unit roundoffs off), so this is SmoothL1(float32(1/9)) as float32 can write it")
    add("tf_faster_rcnn_sigma1", "tf-faster-rcnn",
        ("endernewton/tf-faster-rcnn lib/nets/network.py Network._smooth_l1_loss",
         "https://github.com/endernewton/tf-faster-rcnn/blob/master/lib/nets/network.py"),
        faster_rcnn_sigma(1.0), [sl1(1, "none")], float_mask=True,
        note="the TF original of the same formula (tf.to_float(tf.less)); reduce_mean(reduce_sum(axis=1))")

    # chainer: Huber as 0.5 (d^2 - [d^2 > delta^2] (|d| - delta)^2) -------------------------
    # (added after the held-out corpus of issue 24 found fuse missing it: in float32 the form
    # cancels at large |d|, so only the exact evaluation can prove it)
    add("chainer_huber_delta1_sum_axis1", "chainer", CHAINER, chainer_huber(1.0, full_sum=False), [hub(1, "none")],
        note="reduce='sum_along_second_axis': a partial sum, 'none' under the convention")
    add("chainer_huber_delta0.5_sum", "chainer", CHAINER, chainer_huber(0.5, full_sum=True), [hub(0.5, "sum")],
        threshold=0.5, note="then .sum() of the 'no' reduction")

    # Keras 3 / tf.keras 2 / TF 1 -------------------------------------------------------------
    add("keras3_huber_delta1", "Keras 3", KERAS3, keras3_huber(1.0), [hub(1, "none")], read=True,
        note="mean over the last axis of (8,4): 'none' under the convention")
    add("keras3_huber_delta2", "Keras 3", KERAS3, keras3_huber(2.0), [hub(2, "none")], threshold=2.0, read=True)
    add("keras3_huber_delta0.5_1d", "Keras 3", KERAS3, keras3_huber(0.5), [hub(0.5, "mean")],
        shapes=((16,), (16,)), threshold=0.5, read=True, note="1-D: mean(axis=-1) is the full mean")
    add("keras3_mae_1d", "Keras 3",
        ("keras-team/keras keras/src/losses/losses.py mean_absolute_error", KERAS3[1]),
        keras3_mae, [l1("mean")], shapes=((16,), (16,)), read=True)
    add("tf_keras2_huber_min_delta1", "tf.keras 2.0-2.3", TFK2,
        lambda p, t: torch.mean(tf_min_huber(1.0)(p, t), dim=-1), [hub(1, "none")], read=True,
        note="K.mean(axis=-1) of the Min form")
    add("tf_keras2_huber_min_delta0.5_1d", "tf.keras 2.0-2.3", TFK2,
        lambda p, t: torch.mean(tf_min_huber(0.5)(p, t), dim=-1), [hub(0.5, "mean")], shapes=((16,), (16,)),
        threshold=0.5, read=True)
    add("tf1_losses_huber_delta2_sum_by_nonzero_weights", "TensorFlow 1 (tf.compat.v1.losses)", TF1,
        lambda p, t: (tf_min_huber(2.0)(p, t) * 1.0).sum() / float(p.numel()), [hub(2, ("none", "sum"))],
        threshold=2.0, read=True,
        note="compute_weighted_loss: losses * weights(=1.0), sum / num_present; the * 1.0 may be dropped")
    add("dopamine_dqn_tf_huber_reduction_none_mean", "dopamine (TF)",
        ("google/dopamine dopamine/agents/dqn/dqn_agent.py DQNAgent._build_train_op",
         "https://github.com/google/dopamine/blob/master/dopamine/agents/dqn/dqn_agent.py"),
        lambda p, t: torch.mean(tf_min_huber(1.0)(p, t) * 1.0), [hub(1, ("none", "mean"))],
        note="tf.compat.v1.losses.huber_loss(reduction=NONE) still multiplies by weights=1.0; "
             "then tf.reduce_mean (cited from memory)")
    add("tf_od_api_weighted_smooth_l1", "TF Object Detection API",
        ("tensorflow/models research/object_detection/core/losses.py WeightedSmoothL1LocalizationLoss",
         "https://github.com/tensorflow/models/blob/master/research/object_detection/core/losses.py"),
        lambda p, t: torch.sum(tf_min_huber(1.0)(p, t) * _weights(p, (2, 4, 1)), dim=2), [hub(1, "none")],
        shapes=((2, 4, 4), (2, 4, 4)),
        note="tf.losses.huber_loss(delta=1, weights=expand_dims(weights, 2), NONE), reduce_sum axis 2 "
             "(cited from memory)")
    add("fpn_tensorflow_smooth_l1_rpn", "FPN_Tensorflow (DetectionTeamUCAS)",
        ("DetectionTeamUCAS/FPN_Tensorflow libs/losses/losses.py smooth_l1_loss_rpn",
         "https://github.com/DetectionTeamUCAS/FPN_Tensorflow/blob/master/libs/losses/losses.py"),
        lambda p, t: torch.sum(torch.where(torch.less(torch.abs(p - t), 1), 0.5 * torch.square(torch.abs(p - t)),
                                           torch.abs(p - t) - 0.5), dim=1) * _weights(p, (8,)),
        [sl1(1, "none")], read=True,
        note="square of |e|; reduce_sum axis 1 * object_weights (text read; repo path from memory)")

    # optax / rlax / trfl / dopamine JAX ---------------------------------------------------
    add("optax_huber_delta1_mean", "optax", OPTAX, lambda p, t: optax_huber(1.0)(p, t).mean(), [hub(1, "mean")],
        read=True)
    add("optax_huber_delta2_none", "optax", OPTAX, optax_huber(2.0), [hub(2, "none")], threshold=2.0, read=True)
    add("optax_huber_delta0.25_sum", "optax", OPTAX, lambda p, t: optax_huber(0.25)(p, t).sum(),
        [hub(0.25, "sum")], threshold=0.25, read=True)
    add("optax_huber_delta1_bfloat16_mean", "optax (TPU bfloat16)", OPTAX,
        lambda p, t: optax_huber(1.0)(p, t).mean(), [hub(1, "mean")], dtype="bfloat16", read=True)
    add("rlax_huber_clamp_delta3_mean_last", "rlax",
        ("google-deepmind/rlax rlax/_src/clipping.py huber_loss",
         "https://github.com/google-deepmind/rlax/blob/master/rlax/_src/clipping.py"),
        lambda p, t: optax_huber(3.0, clip=True)(p, t).mean(-1), [hub(3, "none")], threshold=3.0,
        note="jnp.minimum translated as clamp(max=delta) (Clip), as PyTorch ports write it (cited from memory)")
    add("trfl_huber_clamp_delta0.5_sum", "trfl",
        ("google-deepmind/trfl trfl/clipping_ops.py huber_loss",
         "https://github.com/google-deepmind/trfl/blob/master/trfl/clipping_ops.py"),
        lambda p, t: optax_huber(0.5, clip=True)(p, t).sum(), [hub(0.5, "sum")], threshold=0.5,
        note="tf.minimum(abs_x, delta) as clamp(max=delta) (cited from memory)")
    add("dopamine_jax_losses_huber_delta1_mean", "dopamine (JAX)",
        ("google/dopamine dopamine/jax/losses.py huber_loss",
         "https://github.com/google/dopamine/blob/master/dopamine/jax/losses.py"),
        lambda p, t: dopamine_jax_huber(1.0)(t, p).mean(), [hub(1, "mean")],
        note="0.5*delta**2 + delta*(x - delta) above delta (cited from memory)")
    add("dopamine_jax_losses_huber_delta2_none", "dopamine (JAX)",
        ("google/dopamine dopamine/jax/losses.py huber_loss",
         "https://github.com/google/dopamine/blob/master/dopamine/jax/losses.py"),
        lambda p, t: dopamine_jax_huber(2.0)(t, p), [hub(2, "none")], threshold=2.0)

    # quantile Huber (QR-DQN, IQN): a Huber core under a data-dependent weight ------------
    add("sb3_contrib_quantile_huber", "sb3-contrib (QR-DQN, TQC)", SB3C, sb3_quantile_huber, [hub(1, "none")],
        read=True, note="`>` with swapped branches, pairwise_delta**2 * 0.5, tau weight, .mean()")
    add("dopamine_qrdqn_kappa1", "dopamine (JAX)", DOPAMINE_Q, dopamine_quantile(1.0, implicit=False),
        [hub(1, "none")], read=True, float_mask=True)
    add("dopamine_iqn_kappa2", "dopamine (JAX)", DOPAMINE_IQN, dopamine_quantile(2.0, implicit=True),
        [hub(2, "none")], threshold=2.0, read=True, float_mask=True, note="kappa 2; / kappa after the weight")

    # RL baselines -------------------------------------------------------------------------
    add("baselines_deepq_huber_td", "OpenAI baselines", BASELINES,
        lambda q, q_target: torch.mean(_weights(q, (8, 1)) * baselines_huber(q - q_target.detach())),
        [hub(1, "none")], read=True, note="importance_weights * huber_loss(td_error), reduce_mean")
    add("keras_rl_huber_clip2_masked_sum", "keras-rl", KERAS_RL,
        lambda p, t: torch.sum(keras_rl_huber(t, p, 2.0) * _weights(p, (1, 4)), dim=-1), [hub(2, "none")],
        threshold=2.0, read=True, note="delta_clip 2; loss *= mask; K.sum(axis=-1)")
    add("sb3_dqn_F_smooth_l1", "stable-baselines3",
        ("DLR-RM/stable-baselines3 stable_baselines3/dqn/dqn.py DQN.train",
         "https://github.com/DLR-RM/stable-baselines3/blob/master/stable_baselines3/dqn/dqn.py"),
        lambda p, t: F.smooth_l1_loss(p, t), [sl1(1, "mean")], torch_call=True,
        note="F.smooth_l1_loss (cited from memory)")

    # DETR family, SSD, CenterNet, YOLOX, RT-DETR -------------------------------------------
    add("detr_loss_boxes_l1", "DETR",
        ("facebookresearch/detr models/detr.py SetCriterion.loss_boxes",
         "https://github.com/facebookresearch/detr/blob/main/models/detr.py"),
        lambda s, t: F.l1_loss(s, t, reduction="none").sum() / 8.0, [l1("sum")],
        torch_call=True, note="F.l1_loss(reduction='none').sum() / num_boxes (cited from memory)")
    add("rtdetr_ultralytics_l1_sum", "ultralytics (RT-DETR)",
        ("ultralytics/ultralytics ultralytics/models/utils/loss.py DETRLoss._get_loss_bbox",
         "https://github.com/ultralytics/ultralytics/blob/main/ultralytics/models/utils/loss.py"),
        lambda p, g: 5.0 * F.l1_loss(p, g, reduction="sum") / 8, [l1("sum")],
        torch_call=True, note="loss_gain['bbox'] * F.l1_loss(sum) / len(gt_bboxes) (cited from memory)")
    add("yolox_l1_none_sum", "YOLOX",
        ("Megvii-BaseDetection/YOLOX yolox/models/yolo_head.py YOLOXHead.get_losses",
         "https://github.com/Megvii-BaseDetection/YOLOX/blob/main/yolox/models/yolo_head.py"),
        lambda p, t: torch.nn.L1Loss(reduction="none")(p, t).sum() / 8.0, [l1("sum")],
        torch_call=True, note="nn.L1Loss(reduction='none')(...).sum() / num_fg (cited from memory)")
    add("ssd_pytorch_multibox_loc", "ssd.pytorch",
        ("amdegroot/ssd.pytorch layers/modules/multibox_loss.py MultiBoxLoss.forward",
         "https://github.com/amdegroot/ssd.pytorch/blob/master/layers/modules/multibox_loss.py"),
        lambda p, t: F.smooth_l1_loss(p, t, reduction="sum") / 8.0, [sl1(1, "sum")],
        torch_call=True, note="F.smooth_l1_loss(size_average=False) / N (cited from memory)")
    add("centernet_regl1loss", "CenterNet",
        ("xingyizhou/CenterNet src/lib/models/losses.py RegL1Loss",
         "https://github.com/xingyizhou/CenterNet/blob/master/src/lib/models/losses.py"),
        lambda p, t: F.l1_loss(p * _weights(p, (8, 1)), t * _weights(p, (8, 1)), reduction="sum")
        / (_weights(p, (8, 1)).sum() + 1e-4),
        [l1("sum")], torch_call=True,
        note="F.l1_loss(pred * mask, target * mask, size_average=False) / (mask.sum() + 1e-4) (cited from memory)")

    # forms the issue names that the code search found in no library (not counted as real) ----
    add("form_n2_over_2beta_beta0.5", "issue 24 form", ("issue 24: `n**2/(2*beta)`", ""),
        lambda p, t: torch.where(torch.abs(p - t) < 0.5, torch.abs(p - t) ** 2 / (2 * 0.5),
                                 torch.abs(p - t) - 0.25).mean(), [sl1(0.5, "mean")], threshold=0.5, real=False,
        note="find_string 'n ** 2 / (2 * beta)': no hits")
    add("form_half_over_beta_times_n2_beta0.25", "issue 24 form", ("issue 24: `(0.5/beta)*n**2`", ""),
        lambda p, t: torch.where(torch.abs(p - t) < 0.25, (0.5 / 0.25) * torch.abs(p - t) ** 2,
                                 torch.abs(p - t) - 0.125).sum(), [sl1(0.25, "sum")], threshold=0.25, real=False)
    add("form_mmdet_beta2_le", "issue 24 form", ("issue 24: `<=` in place of `<` (mmdet body)", ""),
        lambda p, t: torch.where(torch.abs(p - t) <= 2.0, 0.5 * torch.abs(p - t) * torch.abs(p - t) / 2.0,
                                 torch.abs(p - t) - 1.0), [sl1(2, "none")], threshold=2.0, real=False)
    add("form_sqrt_dd_abs_beta0.5", "issue 24 form", ("issue 24: abs as sqrt(d*d)", ""),
        lambda p, t: torch.where(torch.sqrt((p - t) * (p - t)) < 0.5, (p - t) * (p - t),
                                 torch.sqrt((p - t) * (p - t)) - 0.25).mean(), [sl1(0.5, "mean")], threshold=0.5,
        real=False)
    return c


CASES: list[Case] = _cases()


# --- near-misses ---------------------------------------------------------------------------


#: Measured (torch 2.13): the dynamo exporter writes sqrt((p - t)**2 + eps) without the Add for
#: eps <= 1e-8 (kept for 1e-6); its graph is then sqrt(d*d) = |d| under a mean, an L1 loss that
#: fuse rightly takes. tests/test_fuse_corpus.py checks torch still does this.
DROPPED_EPS = "torch 2.13's dynamo export drops the + 1e-12: its graph is sqrt(d*d) = |d|, an L1 mean"


def _nm() -> list[NearMiss]:
    out: list[NearMiss] = []

    def add(name: str, reason: str, formula: Formula, **kw) -> None:
        out.append(NearMiss(name, reason, formula, **kw))

    def d(p: Tensor, t: Tensor) -> Tensor:
        return torch.abs(p - t)

    add("no_half", "quadratic branch without the 0.5: d*d below 1 (jumps at the threshold)",
        lambda p, t: torch.where(d(p, t) < 1.0, d(p, t) * d(p, t), d(p, t) - 0.5).mean())
    add("wrong_offset", "linear branch d - beta instead of d - beta/2",
        lambda p, t: torch.where(d(p, t) < 0.5, 0.5 * d(p, t) ** 2 / 0.5, d(p, t) - 0.5).mean(), threshold=0.5)
    add("scaled_mse", "no branch: 0.5*d*d everywhere (L2)", lambda p, t: (0.5 * (p - t) * (p - t)).mean())
    add("signed_threshold", "threshold on the signed difference: e < beta, not |e| < beta",
        lambda p, t: torch.where((p - t) < 1.0, 0.5 * (p - t) ** 2, torch.abs(p - t) - 0.5).mean())
    add("pseudo_huber", "pseudo-Huber delta^2 (sqrt(1 + (d/delta)^2) - 1): smooth, never linear",
        lambda p, t: (2.0**2 * (torch.sqrt(1 + ((p - t) / 2.0) ** 2) - 1)).mean(), threshold=2.0)
    add("log_cosh_keras3", "log-cosh (keras/src/losses/losses.py log_cosh: x + softplus(-2x) - log 2)",
        lambda p, t: torch.mean((p - t) + F.softplus(-2.0 * (p - t)) - math.log(2.0), dim=-1),
        source="keras-team/keras keras/src/losses/losses.py log_cosh")
    add("tukey_biweight", "Tukey biweight: c^2/6 (1 - (1 - (d/c)^2)^3) below c, constant above",
        lambda p, t: torch.where(d(p, t) <= 4.685, 4.685**2 / 6 * (1 - (1 - (d(p, t) / 4.685) ** 2) ** 3),
                                 torch.full_like(p, 4.685**2 / 6)).mean(), threshold=4.685)
    add("clipped_l2", "clipped L2: 0.5 * min(d, 1)^2, no linear term",
        lambda p, t: (0.5 * torch.clamp(d(p, t), max=1.0) ** 2).mean())
    add("swapped_branches", "branches swapped: linear below beta, quadratic above",
        lambda p, t: torch.where(d(p, t) < 1.0, d(p, t) - 0.5, 0.5 * d(p, t) ** 2).mean())
    add("threshold_mismatch", "compare at 2, branches of beta 1",
        lambda p, t: torch.where(d(p, t) < 2.0, 0.5 * d(p, t) ** 2, d(p, t) - 0.5).mean(), threshold=2.0)
    add("mmdet_balanced_l1", "mmdet balanced L1 (Libra R-CNN): log-shaped inlier branch",
        lambda p, t: torch.where(
            d(p, t) < 1.0,
            0.5 / (math.e**3 - 1) * ((math.e**3 - 1) * d(p, t) + 1) * torch.log((math.e**3 - 1) * d(p, t) / 1.0 + 1)
            - 0.5 * d(p, t),
            1.5 * d(p, t) + 1.5 / (math.e**3 - 1) - 0.5 * 1.0).mean(),
        source="open-mmlab/mmdetection mmdet/models/losses/balanced_l1_loss.py balanced_l1_loss")
    add("mmdet_ghmr_asl1", "mmdet GHM-R's ASL1 sqrt(d^2 + mu^2) - mu (smooth, never linear)",
        lambda p, t: (torch.sqrt((p - t) * (p - t) + 0.02 * 0.02) - 0.02).mean(), threshold=0.02,
        source="open-mmlab/mmdetection mmdet/models/losses/ghm_loss.py GHMR.forward")
    add("cauchy", "Cauchy/Lorentzian c^2/2 log(1 + (d/c)^2)",
        lambda p, t: (0.5 * torch.log1p(((p - t) / 1.0) ** 2)).mean())
    add("welsch", "Welsch c^2/2 (1 - exp(-(d/c)^2))",
        lambda p, t: (0.5 * (1 - torch.exp(-(((p - t) / 1.0) ** 2)))).mean())
    add("epsilon_insensitive", "epsilon-insensitive max(|e| - eps, 0)",
        lambda p, t: torch.clamp(d(p, t) - 0.5, min=0.0).mean(), threshold=0.5)
    add("wrong_slope", "linear branch of slope 2 after a beta-1 quadratic",
        lambda p, t: torch.where(d(p, t) < 1.0, 0.5 * d(p, t) ** 2, 2.0 * (d(p, t) - 0.5)).mean())
    add("no_offset", "linear branch without the offset: d instead of d - beta/2",
        lambda p, t: torch.where(d(p, t) < 0.5, 0.5 * d(p, t) ** 2 / 0.5, d(p, t)).mean(), threshold=0.5)
    add("threshold_on_d2", "threshold on d*d against beta (0.25), not beta^2: switches at d = 0.5",
        lambda p, t: torch.where((p - t) * (p - t) < 0.25, 0.5 * d(p, t) ** 2 / 0.25, d(p, t) - 0.125).mean(),
        threshold=0.25)
    add("inside_weighted_difference", "py-faster-rcnn with data inside weights: the loss of w*(a - b), "
        "not of one difference a - b", faster_rcnn_sigma(1.0, inside_weights=True), float_mask=True)
    add("pinball", "quantile (pinball) loss max(tau*e, (tau-1)*e): no Huber core",
        lambda p, t: torch.maximum(0.25 * (t - p), (0.25 - 1) * (t - p)).mean())
    add("gt_not_swapped", "`>` but the branches in smooth-L1 order: quadratic above, linear below",
        lambda p, t: torch.where(d(p, t) > 1.0, 0.5 * d(p, t) ** 2, d(p, t) - 0.5).mean())
    add("huber_no_half_delta2", "Huber's linear branch delta*d without -delta^2/2",
        lambda p, t: torch.where(d(p, t) <= 2.0, 0.5 * d(p, t) ** 2, 2.0 * d(p, t)).mean(), threshold=2.0)
    add("capped_linear", "linear branch capped: min(d, 10) - 0.5 (differs above 10)",
        lambda p, t: torch.where(d(p, t) < 1.0, 0.5 * d(p, t) ** 2, torch.clamp(d(p, t), max=10.0) - 0.5).mean(),
        threshold=10.0)
    add("two_differences", "branches of two different differences: |a - b| and |a - 2b|",
        lambda p, t: torch.where(d(p, t) < 1.0, 0.5 * d(p, t) ** 2, torch.abs(p - 2 * t) - 0.5).mean())
    add("charbonnier_mmagic", "Charbonnier sqrt(e^2 + eps) (mmagic CharbonnierLoss)",
        lambda p, t: torch.sqrt((p - t) ** 2 + 1e-12).mean(),
        source="open-mmlab/mmagic mmagic/models/losses/pixelwise_loss.py charbonnier_loss",
        not_for=(("dynamo", DROPPED_EPS),))
    add("charbonnier_eps1e-6", "Charbonnier sqrt(e^2 + 1e-6) (the eps torch's dynamo export keeps)",
        lambda p, t: torch.sqrt((p - t) ** 2 + 1e-6).mean(),
        source="open-mmlab/mmagic mmagic/models/losses/pixelwise_loss.py charbonnier_loss (eps 1e-6)")
    add("bare_l1", "a bare |a - b| with no reduction: not taken for a loss (l1='reduced')",
        lambda p, t: torch.abs(p - t))
    add("float_mask_wrong_complement", "float mask times quadratic plus the linear branch unmasked",
        lambda p, t: (d(p, t) < 1.0).float() * 0.5 * d(p, t) ** 2 + (d(p, t) - 0.5), float_mask=True)
    add("huber_scaled_threshold", "Huber whose compare uses 2*delta: switches at 2, branches of delta 1",
        lambda p, t: torch.where(d(p, t) < 2.0 * 1.0, 0.5 * d(p, t) * d(p, t), 1.0 * (d(p, t) - 0.5)).sum(),
        threshold=2.0)
    # Constants a few float32 steps off: a tolerance on probe values must not take these for
    # the loss (the issue: "wrong offset", "different thresholds in the compare and in the
    # branch"); fused, each would move outputs by 2-8 ulps, beyond one rounding.
    add("offset_4ulp", "linear branch d - 0.50000024 (float32 0.5 + 4 ulps), not d - beta/2",
        lambda p, t: torch.where(d(p, t) < 1.0, 0.5 * d(p, t) ** 2, d(p, t) - 0.50000024))
    add("slope_1e-7", "linear branch d - 0.5 + 1e-7 d: slope 1 + 1e-7",
        lambda p, t: torch.where(d(p, t) < 1.0, 0.5 * d(p, t) ** 2, d(p, t) - 0.5 + 1e-7 * d(p, t)))
    add("quadratic_1ulp", "quadratic coefficient 0.5 * (1 + 1e-7) = float32 0.50000006, not 0.5",
        lambda p, t: torch.where(d(p, t) < 1.0, 0.5 * (1 + 1e-7) * d(p, t) ** 2, d(p, t) - 0.5))
    add("threshold_1e-4_off", "compare at 1.0001, branches of beta 1 (different thresholds, by 1e-4)",
        lambda p, t: torch.where(d(p, t) < 1.0001, 0.5 * d(p, t) ** 2, d(p, t) - 0.5))
    return out


NEAR_MISSES: list[NearMiss] = _nm()

assert len({c.name for c in CASES}) == len(CASES), "case names must be unique"
assert len({n.name for n in NEAR_MISSES}) == len(NEAR_MISSES), "near-miss names must be unique"
assert not {c.name for c in CASES} & {n.name for n in NEAR_MISSES}
REAL_CASES = [c for c in CASES if c.real]


# --- inputs ---------------------------------------------------------------------------------

BATCHES = ("random", "edge", "inf", "nan")


def inputs(case: Case | NearMiss, batch: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(x, target) for ``batch``; x is the prediction (the Linear is the identity), so
    ``x - target`` is the difference the loss sees, up to the one rounding of the Sub.

    random: |x - target| log-uniform from 1e-3*t to 30*t around the threshold t, both signs.
    edge: differences 0, exactly +-t, +-2t, t/2, -t/4, 3t, one float32 step inside/outside t,
    +-1e15 (huge: squares still finite in float32), +-1e-30 (tiny: squares underflow), on
    targets 0, 0.5, -1, 2, -0.25, 4 (t + target is exact for binary-fraction t). Half types
    take 1e4 and 1e-7 instead. inf: +-inf differences among ordinary ones. nan: one NaN target.
    """
    import ml_dtypes

    pshape, tshape = case.shapes
    assert pshape == tshape, f"{case.name}: the corpus feeds same-shape pred and target"
    npdt = np.dtype(ml_dtypes.bfloat16) if case.dtype == "bfloat16" else np.dtype(case.dtype)
    rng = np.random.default_rng(seed)
    t = float(case.threshold)
    n = math.prod(pshape)
    if batch in ("random", "nan"):
        target = rng.standard_normal(pshape) * 2.0
        mag = np.exp(rng.uniform(np.log(1e-3 * t), np.log(30.0 * t), size=pshape))
        offsets = mag * rng.choice([-1.0, 1.0], size=pshape)
        if batch == "nan":
            target.reshape(-1)[min(3, n - 1)] = np.nan
    else:
        target = np.resize(np.array([0.0, 0.5, -1.0, 2.0, -0.25, 4.0]), n).reshape(pshape)
        huge, tiny = (1e4, 1e-7) if case.dtype in ("float16", "bfloat16") else (1e15, 1e-30)
        step_in = float(np.nextafter(np.float32(t), np.float32(0)))
        step_out = float(np.nextafter(np.float32(t), np.float32(np.inf)))
        values = [0.0, t, -t, 2 * t, -2 * t, t / 2, step_in, -step_out, huge, -huge, tiny, -tiny, 3 * t, -t / 4]
        if batch == "inf":
            values = [np.inf, -np.inf, 0.5 * t, -4 * t, 0.0]
        offsets = np.resize(np.array(values, dtype=np.float64), n).reshape(pshape)
    with np.errstate(over="ignore", invalid="ignore"):
        x = target + offsets
        return x.astype(npdt), target.astype(npdt)


def summary() -> dict[str, int]:
    """Case counts (for the docs and the test that guards the corpus size)."""
    return {
        "cases": len(CASES),
        "real_cases": len(REAL_CASES),
        "libraries": len({c.library.split(" (")[0] for c in REAL_CASES}),
        "expected_nodes": sum(len(c.expected) for c in CASES),
        "near_misses": len(NEAR_MISSES),
    }


__all__ = ["BATCHES", "CASES", "NEAR_MISSES", "REAL_CASES", "Case", "Loss", "NearMiss", "inputs", "make_module",
           "matches", "summary"]

