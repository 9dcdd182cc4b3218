"""gpu_check.sh's last word on the parity runner's CUDA rows: every cell of ``ort-cuda`` (the
kernel) and ``ort-cuda-function`` (the function, no library) must be PASS on a GPU machine.
The runner itself reports "unsupported" without failing (right on a CPU machine, where the
CUDA EP is absent); on the GPU machine an unsupported CUDA cell is a failure.

    python custom_op/gpu_parity_cells.py RESULTS/parity_gpu.json
"""

from __future__ import annotations

import json
import sys

CUDA_PATHS = ("ort-cuda", "ort-cuda-function")


def main(path: str) -> int:
    cells = json.load(open(path))["cells"]
    bad = []
    for key, cell in sorted(cells.items()):
        if key.split("/")[0] not in CUDA_PATHS:
            continue
        print(f"{key}: {cell['status']} passed {cell['passed']} failed {cell['failed']} "
              f"unsupported {cell['unsupported']} {cell.get('reasons') or ''}")
        if cell["status"] != "pass" or cell["failed"] or cell["unsupported"]:
            bad.append(key)
    if not any(k.split("/")[0] in CUDA_PATHS for k in cells):
        print(f"{path}: no {' / '.join(CUDA_PATHS)} cells")
        return 1
    if bad:
        print(f"not PASS: {', '.join(bad)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
