"""benchmarks/accelerator_check.py: its CPU smoke mode (--tiny) runs every code path end to end in
a subprocess and writes a complete, well-formed JSON; the budget skips cases and still writes one.

No speed is asserted (CPU numbers from a shared machine say nothing about the accelerator run);
only that every figure exists, is finite and positive, and that the bookkeeping is right.
"""

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

# slow: trains or starts JAX processes (pytest -m 'not slow' leaves these out)
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "accelerator_check.py"


def _load_module():
    spec = importlib.util.spec_from_file_location("accelerator_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(tmp_path, *extra, timeout=900):
    out = tmp_path / "check.json"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    # One torch thread: on a shared 2-core machine torch's intra-op threads spin against each
    # other (tests/backbone_testing.py measured 20x slower forwards).
    proc = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--torch-threads", "1",
                           "--out", str(out), *extra], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=ROOT)
    report = json.loads(out.read_text()) if out.exists() else None
    return proc, report


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def _check_timing(row: dict, batch: int):
    assert row["batch"] == batch
    for key in ("images_per_s", "step_s_median", "step_s_min", "step_s_max", "first_call_s"):
        assert _positive(row[key]), (key, row[key])
    assert row["step_s_min"] <= row["step_s_median"] <= row["step_s_max"]
    assert math.isclose(row["images_per_s"], batch / row["step_s_median"])
    assert row["rounds"] >= 1 and row["steps_per_round"] >= 1
    assert row["losses_finite"] is True
    assert math.isfinite(row["first_loss"]) and math.isfinite(row["last_loss"])
    assert row["mfu"] is None  # no peak is known for a CPU


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    proc, report = _run(tmp_path_factory.mktemp("tiny"), "--tiny", "--simulate-oom-above", "2")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return proc, report


def test_tiny_run_completes_every_case(tiny):
    _, report = tiny
    assert report["schema"] == "wsolax.accelerator_check/1"
    assert report["status"] == "complete"
    assert report["skipped"] == [] and report["errors"] == []
    assert report["machine"]["device"] == "cpu" and report["peak_flops"] is None
    ids = [c["id"] for c in report["cases"]]
    assert ids == ["train/vgg16_gap/cam/float32/small", "train/vgg16_gap/adl/float32/small",
                   "train/vgg16_gap/cam/float32/max", "eval/vgg16_gap/cam/float32/eval",
                   "wtl/tiny/wtl/float32/small"]
    assert all(c["status"] == "ok" and _positive(c["seconds"]) for c in report["cases"])
    assert not any(k.startswith("_") for c in report["cases"] for k in c)
    assert report["phases"]["compile"]["programs"] == 4  # the max case halves onto a cached one
    assert _positive(report["elapsed_s"])


def test_tiny_train_rows_side_by_side(tiny):
    _, report = tiny
    cases = {c["id"]: c for c in report["cases"]}
    for cid in ("train/vgg16_gap/cam/float32/small", "train/vgg16_gap/adl/float32/small"):
        case = cases[cid]
        _check_timing(case["jax"], 2)
        _check_timing(case["torch"], 2)
        assert _positive(case["jax"]["flops_per_step_lowered"])
        assert _positive(case["jax"]["compile_s"])
        assert case["torch"]["autocast"] is None
        assert math.isclose(case["ratio_jax_over_torch"],
                            case["jax"]["images_per_s"] / case["torch"]["images_per_s"])
    # ADL adds no parameters and almost no flops: XLA's count stays within 1 % of CAM's.
    cam = cases["train/vgg16_gap/cam/float32/small"]["jax"]["flops_per_step_lowered"]
    adl = cases["train/vgg16_gap/adl/float32/small"]["jax"]["flops_per_step_lowered"]
    assert abs(adl / cam - 1) < 0.01


def test_tiny_largest_batch_halves_on_out_of_memory(tiny):
    _, report = tiny
    case = {c["id"]: c for c in report["cases"]}["train/vgg16_gap/cam/float32/max"]
    assert case["jax"]["oom_at_batches"] == [4]  # simulated above 2
    _check_timing(case["jax"], 2)
    _check_timing(case["torch"], 2)  # PyTorch starts from the batch wsolax fitted
    assert case["torch"]["oom_at_batches"] == []
    assert _positive(case["ratio_jax_over_torch"])
    assert list(report["target_checks"]) == ["ratio vgg16_gap/float32 >= 1.0"]
    assert report["target_checks"]["ratio vgg16_gap/float32 >= 1.0"] in (True, False)


def test_tiny_eval_and_where_to_look(tiny):
    _, report = tiny
    cases = {c["id"]: c for c in report["cases"]}
    ev = cases["eval/vgg16_gap/cam/float32/eval"]["jax"]
    assert ev["batch"] == 2 and ev["images"] == 4 and ev["scoremap"] == "exact"
    row = ev["evaluator_workers"]["1"]
    for key in ("extract_images_per_s", "host_scoremaps_images_per_s",
                "evaluator_accumulate_images_per_s", "total_images_per_s", "ms_per_image_total"):
        assert _positive(row[key]), (key, row[key])
    # The whole loop is the sum of its parts (plus compute()), so slower than each part.
    assert row["total_images_per_s"] <= min(row["extract_images_per_s"],
                                            row["evaluator_accumulate_images_per_s"])
    assert _positive(ev["flops_per_step_lowered"])
    wtl = cases["wtl/tiny/wtl/float32/small"]
    _check_timing(wtl["jax"], 2)
    assert "torch" not in wtl and "ratio_jax_over_torch" not in wtl


def test_no_budget_skips_every_case_and_still_writes_the_json(tmp_path):
    proc, report = _run(tmp_path, "--tiny", "--budget-s", "0", timeout=300)
    assert proc.returncode == 1  # nothing measured
    assert report["status"] == "failed"
    assert len(report["skipped"]) == len(report["cases"]) == 5
    assert all(c["status"] == "skipped" and c["reason"].startswith("budget")
               for c in report["cases"])


def test_peak_table_and_plan():
    m = _load_module()
    assert m.device_peaks("NVIDIA H200")["bfloat16"] == 989e12
    assert m.device_peaks("NVIDIA H100 PCIe")["matched"] == "h100 pcie"
    assert m.device_peaks("NVIDIA H100 80GB HBM3")["float32"] == 67e12
    assert m.device_peaks("NVIDIA A100-SXM4-80GB")["tf32"] == 156e12
    assert m.device_peaks("TPU v4").get("float32") is None
    assert m.device_peaks("cpu") is None
    assert m.is_oom(MemoryError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate"))
    assert not m.is_oom(ValueError("shape mismatch"))
    plan = m.plan_cases(m.parse_args(["--out", "x.json"]))
    ids = [c["id"] for c in plan]
    assert len(ids) == len(set(ids)) == 22
    # The targets' rows come first, so that a short budget still answers them.
    assert ids[:4] == ["train/resnet50/cam/bfloat16/max", "train/resnet50/cam/float32/max",
                       "train/vgg16_gap/cam/bfloat16/max", "train/vgg16_gap/cam/float32/max"]
    trains = {(c["model"], c["method"], c["dtype"], c["batch_request"])
              for c in plan if c["kind"] == "train"}
    assert len(trains) == 16  # 2 models x CAM/ADL x 2 dtypes x 2 batch sizes
    assert sum(c["kind"] == "wtl" for c in plan) == 4
