"""Save a trained run's weights (optionally the backbone only) for `model.init_from`.  Usage:

    python -m wsolax.export --config configs/synthetic_cam.py --workdir runs/synthetic_cam \
        --out runs/synthetic_cam/backbone.safetensors [--only backbone]
"""

import sys

from wsolax.cli import export_main

if __name__ == "__main__":
    sys.exit(export_main(sys.argv[1:]))
