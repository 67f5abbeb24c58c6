"""Train a WSOL model, then evaluate it.  Usage:

    python train.py --config configs/synthetic_cam.py [--config.train.epochs=3] [--workdir runs/x] [--resume]
"""

import sys

from wsolax.cli import train_main

if __name__ == "__main__":
    sys.exit(train_main(sys.argv[1:]))
