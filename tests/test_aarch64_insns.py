"""benchmarks/aarch64_insns.py's loop analysis on hand-written aarch64 objdump listings.

The script itself needs the cross toolchain (`make test-aarch64` runs it on the real kernels);
this checks, without it, that it finds the main loop from the backward branch, reads the
elements per iteration from the address strides (post-index writeback, `add` of a base or of a
scaled index), tells vector from scalar loops, and refuses strides that disagree.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("aarch64_insns", ROOT / "benchmarks" / "aarch64_insns.py")
assert _spec and _spec.loader
insns = importlib.util.module_from_spec(_spec)
sys.modules["aarch64_insns"] = insns
_spec.loader.exec_module(insns)

# A sum kernel: 8 floats per iteration (two 16-byte loads per input, post-index #32), then a
# scalar tail of one element per iteration (index register scaled by lsl #2).
SUM = """\
0000000000000100 <void ns::SumNeon<(onnx_smoothl1::Loss)0, float>(float const*)>:
     100:\tcmp\tx2, #0x7
     104:\tb.le\t140 <f+0x40>
     108:\tldur\tq2, [x3, #-16]
     10c:\tldur\tq1, [x5, #-16]
     110:\tprfm\tpldl1keep, [x5, #2032]
     114:\tldr\tq0, [x5], #32
     118:\tldr\tq4, [x3], #32
     11c:\tfabd\tv2.4s, v2.4s, v1.4s
     120:\tfadd\tv20.2d, v20.2d, v3.2d
     124:\tcmp\tx6, x8
     128:\tb.ne\t108 <f+0x8>
     12c:\tldr\ts0, [x0, x9, lsl #2]
     130:\tldr\ts1, [x1, x9, lsl #2]
     134:\tfabd\ts0, s0, s1
     138:\tadd\tx9, x9, #0x1
     13c:\tb\t12c <f+0x2c>
     140:\tret

0000000000000200 <void ns::ElemContigPortable<(onnx_smoothl1::Loss)0, double>(double const*)>:
     200:\tldr\td0, [x0, x4]
     204:\tldr\td1, [x1, x4]
     208:\tfabd\td0, d0, d1
     20c:\tstr\td0, [x2, x4]
     210:\tadd\tx4, x4, #0x8
     214:\tcmp\tx4, x5
     218:\tb.ne\t200 <g>
     21c:\tret
"""


def test_main_loop_and_elements() -> None:
    funcs = insns.parse_functions(SUM)
    name, code = insns.find(funcs, "SumNeon", 0, "float")
    lp = insns.main_loop(name, code, 4)
    assert (lp.insns, lp.elements, lp.vectorised, lp.prefetches) == (9, 8, True, 1)
    assert lp.per_element == pytest.approx(9 / 8)


def test_scalar_loop_is_reported_scalar() -> None:
    funcs = insns.parse_functions(SUM)
    name, code = insns.find(funcs, "ElemContigPortable", 0, "double")
    lp = insns.main_loop(name, code, 8)
    assert (lp.insns, lp.elements, lp.vectorised) == (7, 1, False)


def test_disagreeing_strides_are_refused() -> None:
    bad = SUM.replace("ldr\tq4, [x3], #32", "ldr\tq4, [x3], #16")
    funcs = insns.parse_functions(bad)
    name, code = insns.find(funcs, "SumNeon", 0, "float")
    body = [i for i in code if 0x108 <= i[0] <= 0x128]
    with pytest.raises(insns.Fail, match="different strides"):
        insns.elements_per_iteration(body, 4, name)


def test_missing_function_is_an_error() -> None:
    funcs = insns.parse_functions(SUM)
    with pytest.raises(insns.Fail, match="0 functions"):
        insns.find(funcs, "SumNeon", 1, "float")
