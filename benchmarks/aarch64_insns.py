"""Instructions per element of the aarch64 CPU kernels' hot loops, counted statically.

ARM speed is not measured anywhere in this project (no ARM machine; timings under qemu's
emulation mean nothing). This is the cycle-free figure instead: the kernel source is compiled
for aarch64 with the flags of the CMake cross build, disassembled with the cross objdump, and
for each kernel function the loop that handles the most elements per iteration (the main
vector loop, not the scalar tail) is found from its backward branch; its instructions are
counted and divided by the elements it handles per iteration. Elements per iteration are read
from the code too: the byte stride by which the loop advances the address registers of its
loads and stores, divided by the element size (all strides must agree).

Three builds of the same loops are compared:
  neon      the shipped code (NEON intrinsics where GCC's generic vector code lowers badly)
  generic   -DSMOOTHL1_NEON_GENERIC: the x86 baseline's 128-bit loops in plain GCC vector
            extensions, compiled for aarch64
  portable  the scalar loops (SetIsaForTesting(0); float16 / bfloat16 always run these)

    python benchmarks/aarch64_insns.py [--build-dir build/aarch64] [--json out.json]

Needs the cross toolchain (scripts/aarch64/fetch_toolchain.sh) and a configured CMake cross
build (its flags.make; scripts/aarch64/cxx_test.sh makes one). Exits 1 if a shipped NEON loop
is not vectorised.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "custom_op" / "cpu" / "smooth_l1_cpu.cc"
FLAGS_MAKE = Path("custom_op/CMakeFiles/smoothl1_cpu_kernels.dir/flags.make")

TYPES = {"float": 4, "double": 8, "onnx_smoothl1::cpu::Half": 2, "onnx_smoothl1::cpu::BFloat16": 2}
SHORT = {"float": "float32", "double": "float64", "onnx_smoothl1::cpu::Half": "float16",
         "onnx_smoothl1::cpu::BFloat16": "bfloat16"}
LOSSES = {0: "SmoothL1Loss", 1: "HuberLoss"}
# (variant, reduction) -> function template name in the object file
FUNCS = {
    ("neon", "sum"): "SumNeon", ("neon", "none"): "ElemNeon",
    ("generic", "sum"): "SumNeon", ("generic", "none"): "ElemNeon",
    ("portable", "sum"): "SumContigPortable", ("portable", "none"): "ElemContigPortable",
}

BRANCH = re.compile(r"^(b|b\.\w+|cbz|cbnz|tbz|tbnz)$")
TARGET = re.compile(r"(?:^|[ ,])([0-9a-f]+) <")
INSN = re.compile(r"^\s*([0-9a-f]+):\s+(\S+)\s*(.*)$")
HEADER = re.compile(r"^([0-9a-f]+) <(.*)>:$")
ADDR = re.compile(r"\[(\w+)(?:, (#-?\w+|\w+)(?:, (?:lsl|sxtw|uxtw) #(\d+))?)?\](!?)(?:, #(-?\w+))?")
ADD_IMM = re.compile(r"^(x\d+), (x\d+), #(0x[0-9a-f]+|\d+)$")
VECTOR = re.compile(r"\bv\d+\.\d+[bhsd]\b")


class Fail(Exception):
    pass


@dataclass
class Loop:
    function: str
    insns: int
    elements: int
    vectorised: bool
    prefetches: int

    @property
    def per_element(self) -> float:
        return self.insns / self.elements


def parse_functions(dis: str) -> dict[str, list[tuple[int, str, str]]]:
    funcs: dict[str, list[tuple[int, str, str]]] = {}
    current: list[tuple[int, str, str]] | None = None
    for line in dis.splitlines():
        h = HEADER.match(line)
        if h:
            current = funcs.setdefault(h.group(2), [])
            continue
        m = INSN.match(line)
        if m and current is not None:
            current.append((int(m.group(1), 16), m.group(2), m.group(3).split("//")[0].strip()))
    return funcs


def elements_per_iteration(body: list[tuple[int, str, str]], elem_size: int, name: str) -> int:
    increments: dict[str, int] = {}
    for _, mnem, ops in body:
        a = ADD_IMM.match(ops)
        if mnem == "add" and a and a.group(1) == a.group(2):
            increments[a.group(1)] = increments.get(a.group(1), 0) + int(a.group(3), 0)
    uses: list[tuple[str, int]] = []  # (register, shift): registers that address memory
    for _, mnem, ops in body:
        if not (mnem.startswith(("ld", "st"))) or "[" not in ops:
            continue
        m = ADDR.search(ops)
        if not m:
            continue
        base, index, shift, pre, post = m.groups()
        if pre or post:  # writeback: the base register advances by the immediate
            step = int((post or (index or "#0")).lstrip("#"), 0)
            increments[base] = increments.get(base, 0) + step
        uses.append((base, 0))
        if index and not index.startswith("#"):
            uses.append((index, int(shift or 0)))
    strides = {increments[r] << s for r, s in uses if r in increments and r != "sp"}
    if not strides:
        raise Fail(f"{name}: no address register advances in its main loop (cannot count elements)")
    elems = {s // elem_size for s in strides if s % elem_size == 0}
    if len(elems) != 1 or len(strides) != 1:
        raise Fail(f"{name}: the loop's address registers advance by different strides {sorted(strides)}")
    return elems.pop()


def main_loop(name: str, code: list[tuple[int, str, str]], elem_size: int) -> Loop:
    start = code[0][0]
    loops = []
    for addr, mnem, ops in code:
        if not BRANCH.match(mnem):
            continue
        t = TARGET.search(" " + ops)
        if not t:
            continue
        target = int(t.group(1), 16)
        if start <= target <= addr:
            body = [i for i in code if target <= i[0] <= addr]
            try:
                elems = elements_per_iteration(body, elem_size, name)
            except Fail:
                continue  # a loop that does not stream through memory
            vec = any(VECTOR.search(ops2) for _, m2, ops2 in body if not m2.startswith(("ld", "st", "prfm")))
            prfm = sum(1 for _, m2, _ in body if m2 == "prfm")
            loops.append(Loop(name, len(body), elems, vec, prfm))
    if not loops:
        raise Fail(f"{name}: no loop over the elements found")
    return max(loops, key=lambda lp: (lp.elements, -lp.insns))


def find(funcs: dict[str, list[tuple[int, str, str]]], template: str, loss: int, typ: str) -> tuple[str, list]:
    key = f"::{template}<(onnx_smoothl1::Loss){loss}, {typ}>("
    hits = [(n, c) for n, c in funcs.items() if key in n and c]
    if len(hits) != 1:
        raise Fail(f"{template}<{LOSSES[loss]}, {typ}>: {len(hits)} functions in the object (want 1)")
    return hits[0]


def read_flags(build_dir: Path) -> list[str]:
    path = build_dir / FLAGS_MAKE
    if not path.is_file():
        raise Fail(f"{path} not found: configure the aarch64 CMake build first (scripts/aarch64/cxx_test.sh)")
    flags: list[str] = []
    for line in path.read_text().splitlines():
        for key in ("CXX_DEFINES", "CXX_INCLUDES", "CXX_FLAGS"):
            if line.startswith(key + " ="):
                flags += shlex.split(line.split("=", 1)[1])
    if "-ffp-contract=off" not in flags:
        raise Fail(f"{path}: not the kernels' flags (no -ffp-contract=off)")
    return flags


def compile_and_dump(cxx: Path, objdump: Path, flags: list[str], extra: list[str], out: Path) -> str:
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([str(cxx), *flags, *extra, "-c", str(SOURCE), "-o", str(out)], check=True)
    res = subprocess.run([str(objdump), "-d", "-C", "--no-show-raw-insn", str(out)], check=True,
                         capture_output=True, text=True)
    return res.stdout


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build-dir", type=Path, default=ROOT / "build" / "aarch64",
                    help="configured CMake aarch64 build (for its compile flags)")
    ap.add_argument("--toolchain", type=Path, default=ROOT / "third_party" / "aarch64" / "toolchain")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args(argv)
    try:
        cxx = args.toolchain / "usr/bin/aarch64-linux-gnu-g++-12"
        objdump = args.toolchain / "usr/bin/aarch64-linux-gnu-objdump"
        for tool in (cxx, objdump):
            if not tool.exists():
                raise Fail(f"{tool} not found: run scripts/aarch64/fetch_toolchain.sh")
        flags = read_flags(args.build_dir)
        out_dir = args.build_dir / "insns"
        dumps = {
            "neon": compile_and_dump(cxx, objdump, flags, [], out_dir / "neon.o"),
            "generic": compile_and_dump(cxx, objdump, flags, ["-DSMOOTHL1_NEON_GENERIC"], out_dir / "generic.o"),
        }
        dumps["portable"] = dumps["neon"]
        funcs = {v: parse_functions(d) for v, d in dumps.items()}
        rows: list[dict] = []
        bad: list[str] = []
        for typ, size in TYPES.items():
            for red in ("sum", "none"):
                for loss in LOSSES:
                    row: dict = {"dtype": SHORT[typ], "reduction": red, "loss": LOSSES[loss]}
                    for variant in ("neon", "generic", "portable"):
                        if variant != "portable" and size == 2:
                            continue  # float16 / bfloat16: portable loops only (as on x86)
                        name, code = find(funcs[variant], FUNCS[(variant, red)], loss, typ)
                        lp = main_loop(name, code, size)
                        row[variant] = asdict(lp) | {"per_element": round(lp.per_element, 3)}
                        if variant == "neon" and (not lp.vectorised or lp.elements < 2):
                            bad.append(f"{SHORT[typ]} {red} {LOSSES[loss]}")
                    rows.append(row)
    except (Fail, subprocess.CalledProcessError) as e:
        print(f"aarch64_insns: {e}", file=sys.stderr)
        return 2

    def cell(r: dict, v: str) -> str:
        if v not in r:
            return "-"
        c = r[v]
        notes = [f"{c['insns']}/{c['elements']}"]
        if c["prefetches"]:
            notes.append(f"{c['prefetches']} prfm")
        if not c["vectorised"]:
            notes.append("scalar")
        return f"{c['per_element']:.2f} ({', '.join(notes)})"

    print("aarch64 hot loops, static instructions per element (loop instructions / elements per iteration);")
    print("GCC 12 -O3, the library's flags; 'prfm': software prefetches among them (as in the x86 loops).")
    print("Cycle-free: ARM speed is not measured.\n")
    print("| dtype | reduction | loss | NEON (shipped) | generic vector code | portable scalar |")
    print("|---|---|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['dtype']} | {r['reduction']} | {r['loss']} | {cell(r, 'neon')} | {cell(r, 'generic')} "
              f"| {cell(r, 'portable')} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    if bad:
        print(f"aarch64_insns: NEON loop not vectorised: {', '.join(bad)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
