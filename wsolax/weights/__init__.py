"""ImageNet weights from files the user has: torchvision `.pth` (weights-only) and `.safetensors`."""

from wsolax.weights.convert import ConversionReport, WeightError, convert_torch_state_dict
from wsolax.weights.sources import load_state_dict
from wsolax.weights.store import load_converted, overlay, save_converted

__all__ = ["ConversionReport", "WeightError", "convert_torch_state_dict", "load_state_dict",
           "load_converted", "overlay", "save_converted"]
