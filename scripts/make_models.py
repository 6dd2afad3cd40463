#!/usr/bin/env python3
"""Write the catalog's benchmark models as int8 .tflite files (same as `usbtrace models build`).

    python3 scripts/make_models.py conv_300 dense_900   # or a family: conv; or --all
    python3 scripts/make_models.py --all --out /tmp/models

No TensorFlow is needed: the TFLite flatbuffers are written directly (numpy + flatbuffers).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from usbtrace.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["models", "build", *sys.argv[1:]]))
