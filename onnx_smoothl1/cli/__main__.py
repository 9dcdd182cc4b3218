"""``python -m onnx_smoothl1.cli``: the same as the ``onnx-smoothl1`` script."""

import sys

from . import main

sys.exit(main())
