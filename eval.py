"""Evaluate a trained WSOL checkpoint.  Usage:

    python eval.py --config configs/synthetic_cam.py [--workdir runs/x] [--split test]
"""

import sys

from wsolax.cli import eval_main

if __name__ == "__main__":
    sys.exit(eval_main(sys.argv[1:]))
