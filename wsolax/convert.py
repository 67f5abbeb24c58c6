"""Convert ImageNet weights the user has for a config's backbone.  Usage:

    python -m wsolax.convert --config configs/cub_adl_resnet50.py --weights resnet50.pth \
        [--out converted/resnet50.safetensors] [--allow-pickle] [--allow-missing]
"""

import sys

from wsolax.cli import convert_main

if __name__ == "__main__":
    sys.exit(convert_main(sys.argv[1:]))
