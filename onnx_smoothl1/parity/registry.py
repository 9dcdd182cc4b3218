"""The registry of parity paths: the ``ParityPath`` base class, ``Unsupported``, and the
ordered ``PATHS`` that ``register`` fills (``parity/runtimes/__init__.py`` imports one module
per runtime, in report order; each registers its path).

A path declares:

- ``name`` and ``title`` (the report's row and its description);
- why it is unavailable here (``_why_unavailable``: a missing package, library, device),
  reported as "unsupported: <reason>" for every case;
- how to run a model (``run_model``; ``run_case`` for a grid case, by default the one-node
  model through ``run_model``);
- how to prove what ran (``what_ran``: "kernel", "function (inlined by ORT)", "inlined
  model", "<EP> ran the compute nodes", from the path's own evidence: a profile, the model
  it handed over, the EP placement record);
- its known limits (``limits``, see ``parity.limits``): a third-party runtime's documented
  deviation from SPEC, for a scope of cases decided by the case alone, so that the verdict is
  the same on every machine; reported as unsupported with the measured error, and a failure
  beyond the limit's bound.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import onnx

from .cases import Case
from .limits import KnownLimit
from .models import function_model

#: Comma-separated path names to treat as unavailable (tests, or to skip a slow runtime).
DISABLE_ENV = "ONNX_SMOOTHL1_PARITY_DISABLE"


class Unsupported(Exception):
    """Raised by a path for a case (or a whole dtype) it does not support, with the reason.

    ``max_abs``/``max_rel`` carry the measured error when the path ran but is known to be
    less accurate than SPEC (a known limit).
    """

    def __init__(self, reason: str, max_abs: float = np.nan, max_rel: float = np.nan):
        super().__init__(reason)
        self.max_abs, self.max_rel = max_abs, max_rel


class ParityPath:
    """One way of running the node. Subclasses implement ``_why_unavailable``, ``run_model``
    (or ``run_case``) and, where they can prove it, ``what_ran``."""

    name = ""
    title = ""
    #: our own implementation (errors are failures) vs a third-party runtime (errors are
    #: reported as unsupported with the runtime's message)
    third_party = False
    #: can run an arbitrary user model (``--model``)
    runs_models = True
    #: the oracle itself in the inputs' dtype: shown for reference, never a failure
    baseline = False
    #: known limits of this runtime (``parity.limits.KnownLimit``): scope, reason, bound
    limits: Sequence[KnownLimit] = ()
    #: what this path claims to execute; ``what_ran`` says what it proved
    executes = ""
    #: the runtime runs in a worker process (``parity.worker``): the runner then drives this
    #: path from a thread of its own, beside the others, since it mostly waits on the worker
    in_worker = False

    def __init__(self) -> None:
        self.notes: list[str] = []
        self._ran = ""

    @functools.cached_property
    def unavailable(self) -> str | None:
        disabled = {p.strip() for p in os.environ.get(DISABLE_ENV, "").split(",") if p.strip()}
        if self.name in disabled:  # (names checked by select_paths: disabled_paths)
            return f"disabled by {DISABLE_ENV}"
        try:
            return self._why_unavailable()
        except Exception as exc:  # an import that fails in an unexpected way
            return f"{type(exc).__name__}: {first_line(exc)}"

    def _why_unavailable(self) -> str | None:
        return None

    def prepare(self, cases: Sequence[Case]) -> None:
        """Called by ``run_grid`` with every case before the grid runs (a compiler path
        sends its group models to its worker to compile, for example)."""

    def run_case(self, case: Case, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Run one grid case (a one-node model); default: build the model and ``run_model``."""
        model = function_model(case.beta, case.reduction, case.dtype, case.loss)
        return self.run_model(model, {"input": x, "target": y}, key=case)[0]

    def run_model(
        self, model: onnx.ModelProto, feeds: Mapping[str, np.ndarray], key: object = None
    ) -> list[np.ndarray]:
        raise NotImplementedError(f"{type(self).__name__} does not run models")

    @classmethod
    def limit_for(cls, case: Case) -> KnownLimit | None:
        """The known limit whose scope holds ``case``, if any."""
        return next((lim for lim in cls.limits if lim.covers(case)), None)

    @classmethod
    def dtype_limit(cls, dtype: str) -> KnownLimit | None:
        """A known limit for results of ``dtype`` (a user's model: no grid case to scope by)."""
        return next((lim for lim in cls.limits if lim.dtype == dtype), None)

    def proved(self, what: str) -> None:
        """Record what the last run proved it executed (see ``what_ran``)."""
        self._ran = what

    def what_ran(self) -> str:
        """What really executed in the last successful run: the path's proof where it has
        one (``proved``), else its claim (``executes``)."""
        return self._ran or self.executes

    def close(self) -> None:
        pass


#: Every registered path, in report order (``register`` appends).
PATHS: dict[str, type[ParityPath]] = {}


def register(path_cls: type[ParityPath]) -> type[ParityPath]:
    """Add a path to ``PATHS`` (usable as a class decorator). Its name must be new."""
    if not isinstance(path_cls, type) or not issubclass(path_cls, ParityPath):
        raise TypeError(f"path_cls: expected a ParityPath subclass, got {path_cls!r}")
    if not path_cls.name:
        raise ValueError(f"path_cls: {path_cls.__name__} has no name")
    if PATHS.get(path_cls.name, path_cls) is not path_cls:
        raise ValueError(f"path_cls: a path named {path_cls.name!r} is already registered")
    PATHS[path_cls.name] = path_cls
    return path_cls


def select_paths(names: Iterable[str] | None) -> list[ParityPath]:
    """Instances of the named paths (all registered ones by default), in the given order."""
    chosen = list(names) if names is not None else list(PATHS)
    disabled_paths()  # unknown names in the disable variable are an error
    unknown = [n for n in chosen if n not in PATHS]
    if unknown:
        raise ValueError(f"paths: unknown path(s) {', '.join(unknown)}; choose from {', '.join(PATHS)}")
    return [PATHS[n]() for n in chosen]


def first_line(exc: BaseException, limit: int = 240) -> str:
    """An exception's message on one line, at most ``limit`` characters."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:limit] + ("..." if len(text) > limit else "")


def import_reason(module: str, install: str) -> str | None:
    """Why ``module`` cannot be used (not installed, with the pip arguments that install
    just it, e.g. "'onnx-smoothl1[runtimes]'" or "apache-tvm"), or None."""
    try:
        found = importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a dotted name whose parent package is missing
        found = False
    if not found:
        return f"{module} is not installed (pip install {install})"
    return None


def disabled_paths() -> set[str]:
    """The path names in ``DISABLE_ENV``; ``ValueError`` naming the variable for unknown ones
    (a misspelt name would otherwise disable nothing, silently)."""
    names = {p.strip() for p in os.environ.get(DISABLE_ENV, "").split(",") if p.strip()}
    unknown = sorted(names - set(PATHS))
    if unknown:
        raise ValueError(f"{DISABLE_ENV}: unknown path(s) {', '.join(unknown)}; choose from {', '.join(PATHS)}")
    return names
