"""The host-side judges of scripts/aarch64/e2e.sh (scripts/aarch64/e2e_checks.py: doctor, parity,
demo) pass what a good aarch64 run prints and fail what a bad one would: each can fail. The
emulated run itself is `make test-aarch64` (it needs qemu and ~0.3 GB of downloads)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("e2e_checks", ROOT / "scripts" / "aarch64" / "e2e_checks.py")
assert _spec is not None and _spec.loader is not None
e2e_checks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(e2e_checks)

SITE = "/x/site"


def _doctor(**changes) -> dict:
    report = {
        "ok": True,
        "package": {"version": "0.1.0", "platform": "Linux aarch64"},
        "onnxruntime": {"version": "1.30.0"},
        "library": {"path": f"{SITE}/onnx_smoothl1/lib/libonnx_smoothl1_ops.so", "loads": True,
                    "registers": True, "cpu_kernel_ran": True, "op_types": ["HuberLoss", "SmoothL1Loss"]},
        "problems": [],
    }
    for key, value in changes.items():
        section, _, field = key.partition("__")
        if field:
            report[section][field] = value
        else:
            report[section] = value
    return report


@pytest.mark.parametrize("changes, good", [
    ({}, True),
    ({"ok": False}, False),
    ({"package__platform": "Linux x86_64"}, False),
    ({"library__cpu_kernel_ran": False}, False),
    ({"library__op_types": ["SmoothL1Loss"]}, False),
    ({"library__path": "/elsewhere/libonnx_smoothl1_ops.so"}, False),
])
def test_doctor_judge(tmp_path: Path, changes: dict, good: bool):
    path = tmp_path / "doctor.json"
    path.write_text(json.dumps(_doctor(**changes)))
    assert e2e_checks.main(["doctor", str(path), "--site", SITE]) == (0 if good else 1)


def _parity(drop: str | None = None, fail: str | None = None, ran_kernel: str = "kernel (profile)") -> dict:
    verdicts = {}
    for path in ("ort-kernel", "ort-function"):
        for dtype in e2e_checks.DTYPES:
            for reduction in e2e_checks.REDUCTIONS:
                for shape in ("rank0", "empty", "broadcast"):
                    verdicts[f"{path}/{shape}/{dtype}/beta=1/{reduction}"] = "pass"
                    verdicts[f"{path}/{shape}/{dtype}/huber delta=0.35/{reduction}"] = "pass"
    if drop:
        verdicts = {k: v for k, v in verdicts.items() if drop not in k}
    if fail:
        verdicts[fail] = "fail"
    return {"ok": fail is None, "partial": False, "cases": len(verdicts) // 2, "seconds": 1.0, "environment": {},
            "ran": {"ort-kernel": ran_kernel, "ort-function": "function (inlined by ORT)"}, "cells": {},
            "verdicts": verdicts}


@pytest.mark.parametrize("kwargs, good", [
    ({}, True),
    ({"fail": "ort-kernel/rank0/float16/beta=1/sum"}, False),
    ({"drop": "/empty/"}, False),                       # no empty shape
    ({"drop": "huber delta=0.35/none"}, False),         # a loss x reduction missing
    ({"ran_kernel": "function (inlined by ORT)"}, False),
])
def test_parity_judge(tmp_path: Path, kwargs: dict, good: bool):
    path = tmp_path / "parity.json"
    path.write_text(json.dumps(_parity(**kwargs)))
    assert e2e_checks.main(["parity", str(path)]) == (0 if good else 1)


DEMO = """SmoothL1Loss demo: 100000 elements per input, seed 0; paths: kernel, function
dtype     beta reduction path     ran                     loss[0] max rel err  ok
---------------------------------------------------------------------------------
float32      1 mean      kernel   SmoothL1Loss          0.7206346    7.72e-09  PASS  (3443.2 ms)
float32      1 mean      function 29 std ops            0.7206346    7.72e-09  PASS  (1264.5 ms)
float16      1 mean      kernel   SmoothL1Loss          0.7255859    1.03e-04  PASS  (120.1 ms)
float16      1 mean      function 32 std ops            0.7255859    1.03e-04  PASS  (421.9 ms)
all paths match the float64 reference (numpy: torch is not installed) within SPEC tolerance
"""


@pytest.mark.parametrize("text, good", [
    (DEMO, True),
    (DEMO.replace("1.03e-04  PASS  (120.1", "1.03e-04  FAIL  (120.1"), False),
    (DEMO.replace("kernel   SmoothL1Loss          0.72558", "kernel   32 std ops            0.72558"), False),
    ("\n".join(line for line in DEMO.splitlines() if "kernel " not in line), False),
    ("", False),
])
def test_demo_judge(tmp_path: Path, text: str, good: bool):
    path = tmp_path / "demo.txt"
    path.write_text(text)
    assert e2e_checks.main(["demo", str(path)]) == (0 if good else 1)


def test_doctor_judge_names_the_runtime(tmp_path: Path):
    path = tmp_path / "doctor.json"
    path.write_text(json.dumps(_doctor()))   # onnxruntime 1.30.0
    assert e2e_checks.main(["doctor", str(path), "--site", SITE, "--ort", "1.30.0"]) == 0
    assert e2e_checks.main(["doctor", str(path), "--site", SITE, "--ort", "1.21.1"]) == 1
