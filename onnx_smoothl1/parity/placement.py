"""The placement proof of the execution-provider paths: which EP ran which node.

onnxruntime falls back to ``CPUExecutionProvider`` silently, for a whole session (the EP
could not be created) or per node (the EP has no kernel for that op/type). So for every new
session the worker records ``session.get_providers()``, the EP graph assignment
(``session.record_ep_graph_assignment_info`` => ``get_provider_graph_assignment_info()``:
every node of the partitioned graph and its EP) and one profiled run (node events carry the
provider and the input types). ``Placement.check`` raises ``PlacementError`` (a failure,
never ``Unsupported``) when the EP is not the session's first provider, or when any
*compute* node was placed on CPU. Allowed on CPU (shape bookkeeping, which ORT deliberately
keeps on CPU):

- ``Shape``, ``Size``, ``Constant`` (they read no tensor data), and
- nodes of ``SHAPE_ARITHMETIC_OPS`` (Cast, Mod, Sub, Add, Mul, Div, Reshape, ...) whose
  inputs are all integer tensors (int32/int64): the arithmetic on sizes and pads, e.g.
  ``Cast(Size(x))`` or ``Mod(Size(x), block)``. The project's data are floating point, so an
  integer-only node is shape bookkeeping; a float (or bool) input makes it a compute node.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

WEBGPU_EP = "WebGpuExecutionProvider"
OPENVINO_EP = "OpenVINOExecutionProvider"
CPU_EP = "CPUExecutionProvider"
CUDA_EP = "CUDAExecutionProvider"

#: Read no tensor data: allowed on CPU whatever their input types.
SHAPE_SOURCE_OPS = frozenset({"Shape", "Size", "Constant", "ConstantOfShape"})
#: Allowed on CPU when every input is an integer tensor (shape/size/pad arithmetic).
SHAPE_ARITHMETIC_OPS = frozenset({
    "Cast", "Mod", "Sub", "Add", "Mul", "Div", "Neg", "Max", "Min", "Reshape", "Unsqueeze",
    "Squeeze", "Concat", "Gather", "Slice", "Range", "Expand", "Identity",
})
_INTEGER_TYPES = frozenset({"int64", "int32", "uint64", "uint32"})


class PlacementError(RuntimeError):
    """Compute nodes ran on CPU (or the EP was not used at all): a failure, not unsupported."""


@dataclass
class Placement:
    """Where one session put its nodes (from the worker)."""

    providers: list[str]
    #: (ep, op_type, node name) for every node of the partitioned graph
    assigned: list[tuple[str, str, str]]
    #: node name -> (op_type, provider, input element types) from one profiled run
    events: dict[str, tuple[str, str, list[str]]] = field(default_factory=dict)
    ort_version: str = ""

    @property
    def nodes(self) -> list[tuple[str, str, str]]:
        """(ep, op_type, name) of every node: the assignment record, completed from the
        profile (the WebGPU plugin EP records only the CPU nodes in the assignment info in
        onnxruntime 1.30; a compiling EP's fused nodes appear in the profile under their
        own names)."""
        out = list(self.assigned)
        known = {name for _, _, name in out}
        for name, (op, provider, _) in self.events.items():
            if name not in known and provider:
                out.append((provider, op, name))
        return out

    def on(self, ep: str) -> list[tuple[str, str]]:
        return [(op, name) for e, op, name in self.nodes if e == ep]

    def cpu_compute_nodes(self) -> list[tuple[str, str, tuple[str, ...]]]:
        """The CPU-placed nodes outside the allow-list: (op_type, name, input types)."""
        bad = []
        for ep, op, name in self.nodes:
            if ep != CPU_EP or op in SHAPE_SOURCE_OPS:
                continue
            types = self.events.get(name, ("", "", None))[2]
            if op in SHAPE_ARITHMETIC_OPS and types and set(types) <= _INTEGER_TYPES:
                continue
            bad.append((op, name, tuple(types or ())))
        return bad

    def what_ran(self, ep: str) -> str:
        """The report's "what ran" for a checked placement (the same text for every case, so
        a path's row reads as one proof, not one line per graph)."""
        return f"{ep} ran the compute nodes (placement proof: EP assignment + profile)"

    def check(self, ep: str) -> None:
        """Raise PlacementError unless ``ep`` ran every compute node."""
        if not self.providers or self.providers[0] != ep:
            raise PlacementError(
                f"{ep} is not the session's provider (onnxruntime {self.ort_version} chose "
                f"{', '.join(self.providers) or 'nothing'})"
            )
        others = sorted({e for e, _, _ in self.nodes} - {ep, CPU_EP})
        if others:
            raise PlacementError(f"nodes assigned to unexpected providers {', '.join(others)}")
        bad = self.cpu_compute_nodes()
        if bad:
            # Op(input types) with counts first (what a truncated grid line shows), then names.
            kinds: dict[str, int] = {}
            for op, _, types in bad:
                key = f"{op}({','.join(types) if types else 'not run'})"
                kinds[key] = kinds.get(key, 0) + 1
            summary = ", ".join(k + (f" x{n}" if n > 1 else "") for k, n in kinds.items())
            raise PlacementError(
                f"{len(bad)} compute node(s) ran on {CPU_EP}, not {ep}"
                f"{' (none on ' + ep + ')' if not self.on(ep) else ''}: {summary}; "
                f"nodes: {', '.join(name for _, name, _ in bad)}"
            )
        if not self.on(ep):
            raise PlacementError(f"no node was placed on {ep}")


def placement_from(info: Mapping[str, Any]) -> Placement:
    """A ``Placement`` from the worker's record (``worker._OrtEpRunner._placement``)."""
    return Placement(
        list(info["providers"]),
        [tuple(a) for a in info["assigned"]],
        {k: tuple(v) for k, v in info["events"].items()},
        info.get("ort_version", ""),
    )
