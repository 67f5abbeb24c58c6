"""CAM baseline on ResNet50, OpenImages30k (the benchmark of Choe et al. CVPR'20).

The benchmark's OpenImages protocol: 100 classes, its training settings (configs/_paper.py), the
threshold chosen on its val split (train-fullsup), scored by PxAP on test from the instance masks.
Prepare the metadata with `python -m wsolax.prepare openimages` (README, "Your own dataset"); the
box metrics it also reports use boxes derived from the masks and are not part of the benchmark's
OpenImages protocol.
"""

import _paper


def get_config():
    return _paper.paper_config("openimages_cam_resnet50", "openimages", "resnet50")
