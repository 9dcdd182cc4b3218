"""``python -m onnx_smoothl1``: the ``onnx-smoothl1`` command line."""

import sys

from .cli import main

sys.exit(main())
