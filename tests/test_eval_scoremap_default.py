"""End to end: the default evaluation path (`collect_split` with `eval.scoremap = "exact"`) gives
the literal oracle's per-threshold counts on CAMs where the float32 path does not.

A stub network stands in for the model: its CAMs are constant for images of even classes (the
reference makes those all-zero maps; the float32 resize ripples and min-max stretches the ripples
to [0, 1]) and image-dependent otherwise.  The expected result comes from the reference's steps
written out here -- cv2 per map on the float64 cast, the reference's normalisation -- fed to the
literal oracle evaluator over the same batches.
"""

from __future__ import annotations

import cv2
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wsolax import datasets
from wsolax.config import base_config
from wsolax.data import pipeline
from wsolax.data.metadata import load_mask
from wsolax.localization.cams import make_cam_extractor
from wsolax.evaluation.oracle import LiteralEvaluator
from wsolax.localization.run import collect_split

CAM_GRID = 4  # 32 px crops -> 4x4 CAMs, an 8x upscale as for a stride-8 network


class StubNetwork:
    """`apply` as the extractor calls it; no parameters."""

    num_classes = 4

    def apply(self, variables, x, classes=None, *, train=False, cam_classes=None, method=None):
        if method is not None:  # the head on features, for the top-1 class's CAM
            return None, self._cams(x, classes)
        b, h, w, c = x.shape
        g = CAM_GRID
        features = x.reshape(b, g, h // g, g, w // g, c).mean(axis=(2, 4))
        weights = jnp.arange(c * self.num_classes, dtype=x.dtype).reshape(c, -1) / 7.0
        logits = jnp.sin(features.mean(axis=(1, 2)) @ weights)
        return {"logits": logits, "cams": self._cams(features, cam_classes),
                "features": features}

    @staticmethod
    def _cams(features, classes):
        varying = features[..., :1] * 3 + features[..., 1:2]
        constant = jnp.broadcast_to(features.mean(axis=(1, 2, 3))[:, None, None, None] + 1.37,
                                    varying.shape)
        return jnp.where((classes % 2 == 0)[:, None, None, :], constant, varying)


def reference_scoremap(cam32: np.ndarray, size) -> np.ndarray:
    cam = cv2.resize(cam32.astype(np.float64), size[::-1], interpolation=cv2.INTER_CUBIC)
    if np.isnan(cam).any() or cam.min() == cam.max():
        return np.zeros_like(cam)
    cam -= cam.min()
    cam /= cam.max()
    return cam


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    cfg = base_config()
    cfg.data.root = str(tmp_path_factory.mktemp("scoremap") / "synthetic")
    cfg.data.synthetic.image_size = 32
    cfg.data.synthetic.num_train = 8
    cfg.data.synthetic.num_val = 24
    cfg.data.synthetic.num_test = 4
    cfg.data.num_classes = StubNetwork.num_classes
    cfg.data.resize_size, cfg.data.crop_size, cfg.data.num_threads = 32, 32, 1
    cfg.eval.batch_size = 8
    cfg.eval.cam_curve_interval = 0.01
    cfg.train.progress_bar = False
    return cfg, jax.sharding.Mesh(np.asarray(jax.devices()[:1]), ("data",))  # one device


def oracle_result(cfg, extractor):
    meta = datasets.load_split(cfg.data, "val")
    size = (cfg.data.crop_size, cfg.data.crop_size)
    masks = (lambda i: load_mask(meta, i, size)) if meta.masks else None
    oracle = LiteralEvaluator(meta.boxes, meta.sizes, input_size=size,
                              cam_curve_interval=cfg.eval.cam_curve_interval,
                              iou_thresholds=tuple(cfg.eval.iou_thresholds), mask_loader=masks)
    constant = 0
    for batch in pipeline.eval_batches(meta, batch_size=cfg.eval.batch_size, crop_size=size,
                                       mean=cfg.data.mean, std=cfg.data.std, resize=cfg.data.resize,
                                       max_boxes=cfg.data.max_boxes):
        out = jax.device_get(extractor(None, jnp.asarray(batch["image"]),
                                       jnp.asarray(batch["label"])))
        valid = np.asarray(batch["valid"], bool)
        cams = np.asarray(out["cam_gt"])[valid]
        constant += int((cams.min(axis=(1, 2)) == cams.max(axis=(1, 2))).sum())
        oracle.accumulate([meta.image_ids[i] for i in np.asarray(batch["index"])[valid]],
                          np.stack([reference_scoremap(c, size) for c in cams]),
                          batch["label"][valid], top1=out["top1"][valid],
                          top5=out["topk"][valid])
    assert 0 < constant < len(meta.image_ids)  # both kinds of CAM are present
    return oracle.compute(threshold_index=3), oracle.has_predictions


def curves_equal(result, expected) -> bool:
    keys = [k for k in expected if k.endswith("_curve") or "_curve@" in k or k == "pxap"]
    assert any(k.startswith("box_acc_v2_curve@") for k in keys)
    return all(np.array_equal(result[k], expected[k]) for k in keys)


def test_default_path_gives_the_oracle_counts_and_float32_does_not(setup):
    cfg, mesh = setup
    assert cfg.eval.scoremap == "exact"  # the default
    exact = make_cam_extractor(StubNetwork(), mesh, (32, 32))
    expected, has_predictions = oracle_result(cfg, exact)
    assert has_predictions

    evaluator, kept = collect_split(cfg, "val", exact, None, mesh, keep=2)
    result = evaluator.compute(threshold_index=3)
    assert curves_equal(result, expected)
    for key in ("max_box_acc", "max_box_acc_v2", "top1_loc@val_tau", "gt_known_loc@val_tau"):
        assert result[key] == expected[key], key
    assert kept[0]["scoremap"].dtype == np.float64

    cfg_f32 = cfg.copy_and_resolve_references()
    cfg_f32.eval.scoremap = "device_float32"
    device = make_cam_extractor(StubNetwork(), mesh, (32, 32), scoremap="device_float32")
    evaluator32, _ = collect_split(cfg_f32, "val", device, None, mesh)
    assert not curves_equal(evaluator32.compute(threshold_index=3), expected)


def test_float32_option_needs_a_float32_extractor(setup):
    cfg, mesh = setup
    cfg = cfg.copy_and_resolve_references()
    cfg.eval.scoremap = "device_float32"
    with pytest.raises(ValueError, match="device_float32"):
        collect_split(cfg, "val", make_cam_extractor(StubNetwork(), mesh, (32, 32)), None, mesh)
    with pytest.raises(ValueError, match="scoremap must be one of"):
        make_cam_extractor(StubNetwork(), mesh, (32, 32), scoremap="float16")
