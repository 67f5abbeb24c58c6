"""CAM (Zhou et al. CVPR'16): no knob of its own; the shared learning rate and feature map."""

from _common import common_space


def get_space():
    return common_space()
