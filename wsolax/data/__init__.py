"""Data layer: the wsolevaluation metadata layout, the generated WSOL set and
the grain input pipelines.

Names are imported lazily (PEP 562) so that `import wsolax.data` and the
generator's worker processes don't pay for importing grain.
"""

import importlib

_EXPORTS = {
    "DatasetError": "errors",
    "SplitMetadata": "metadata",
    "load_split": "metadata",
    "load_mask": "metadata",
    "verify_images": "metadata",
    "decode_rgb": "image_io",
    "SyntheticSpec": "synth_spec",
    "write_synthetic_dataset": "synthetic",
    "load_synthetic_split": "synthetic",
    "load_part_masks": "synthetic",
    "read_spec": "synthetic",
    "save_preview_grid": "preview",
    "train_batches": "pipeline",
    "eval_batches": "pipeline",
    "iterate": "pipeline",
    "steps_per_epoch": "pipeline",
    "IMAGENET_MEAN": "transforms",
    "IMAGENET_STD": "transforms",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)


def __dir__():
    return __all__
