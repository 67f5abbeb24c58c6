"""Convert weights the user has for a config's model.  Usage:

    python -m wsolax.convert --config configs/cub_adl_resnet50.py --weights resnet50.pth \
        [--out converted/resnet50.safetensors] [--allow-pickle] [--allow-missing]

A whole model trained by the CVPR'20 benchmark's code (clovaai/wsolevaluation), to evaluate:

    python -m wsolax.convert --layout wsolevaluation \
        --config configs/wsolevaluation.py:cub,adl,vgg16 \
        --weights train_log/<experiment>/best_checkpoint.pth.tar \
        --out weights/<experiment>.safetensors --eval-workdir runs/<experiment>
    python eval.py --config configs/wsolevaluation.py:cub,adl,vgg16 --workdir runs/<experiment>
"""

import sys

from wsolax.cli import convert_main

if __name__ == "__main__":
    sys.exit(convert_main(sys.argv[1:]))
