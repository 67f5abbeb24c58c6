"""Read a PyTorch-layout state dict into numpy without executing pickled code by default.

* `.safetensors` (timm / Hugging Face): read with the `safetensors` package, no torch needed.
* `.pth` / `.pt` / `.bin` / `.ckpt` (torchvision): `torch.load(weights_only=True)`, which only
  rebuilds tensors and plain containers; torch is an optional extra (`pip install torch==2.13.0`).
  `allow_pickle=True` switches to full unpickling, for files from sources the user trusts.
* `.npz`: numpy arrays, `allow_pickle=False`.

Training scripts wrap the state dict: a dict holding it under `state_dict` (or `model`, ...) is
unwrapped, e.g. the CVPR'20 benchmark's `*_checkpoint.pth.tar` ({'architecture', 'epoch',
'state_dict', 'optimizer'}: strings, ints and tensors, which `weights_only=True` reads).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wsolax.weights.convert import WeightError

TORCH_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".tar")
# Wrappers that training scripts put around the state dict.
_WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "net")


def _to_numpy(value) -> np.ndarray:
    import torch

    t = value.detach().cpu()
    if t.dtype in (torch.bfloat16, torch.float16):
        t = t.float()
    return t.numpy()


def _load_torch(path: Path, allow_pickle: bool) -> dict[str, np.ndarray]:
    try:
        import torch
    except ImportError as e:
        raise WeightError(f"{path}: reading a PyTorch checkpoint needs torch; install the CPU build "
                          f"with `pip install torch==2.13.0`, or convert the file to .safetensors"
                          ) from e
    try:
        obj = torch.load(path, map_location="cpu", weights_only=not allow_pickle)
    except Exception as e:  # torch raises UnpicklingError (and others) for non-weight pickles
        hint = "" if allow_pickle else (
            " (the file holds more than tensors; it was loaded with weights_only=True. If you "
            "trust its source, pass --allow-pickle)")
        raise WeightError(f"{path}: cannot load: {type(e).__name__}: {str(e)[:300]}{hint}") from e
    for key in _WRAPPER_KEYS:
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict):
        raise WeightError(f"{path}: expected a state dict (name -> tensor), got {type(obj).__name__}")
    out = {}
    for name, value in obj.items():
        if not isinstance(value, torch.Tensor):
            continue
        # nn.DataParallel / DistributedDataParallel checkpoints prefix every name with "module."
        out[name.removeprefix("module.")] = _to_numpy(value)
    return out


def _load_safetensors(path: Path) -> dict[str, np.ndarray]:
    from safetensors import safe_open

    out = {}
    try:
        with safe_open(str(path), framework="numpy") as f:
            for name in f.keys():
                out[name] = np.asarray(f.get_tensor(name))
    except Exception as e:
        raise WeightError(f"{path}: not a readable safetensors file: {e}") from e
    return out


def load_state_dict(path: str | Path, *, allow_pickle: bool = False) -> dict[str, np.ndarray]:
    """Name -> numpy array from a weights file; refuses formats that need unpickling by default."""
    path = Path(path)
    if not path.is_file():
        raise WeightError(f"weights file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        sd = _load_safetensors(path)
    elif suffix in TORCH_SUFFIXES:
        sd = _load_torch(path, allow_pickle)
    elif suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            sd = {k: z[k] for k in z.files}
    elif allow_pickle:
        sd = _load_torch(path, allow_pickle=True)
    else:
        raise WeightError(f"{path}: unknown weights format '{suffix}'; expected .safetensors, "
                          f"{', '.join(TORCH_SUFFIXES)} or .npz (pass --allow-pickle to unpickle "
                          f"a trusted file of another kind)")
    if not sd:
        raise WeightError(f"{path}: holds no tensors")
    return {k: (v.astype(np.float32) if v.dtype.kind == "f" and v.dtype != np.float64 else v)
            for k, v in sd.items()}
