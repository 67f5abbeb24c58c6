"""The evaluation protocol (evaluator, boxes, PxAP, oracle, checks, kernels, reference score maps)
imports no JAX: it can ship alone, and its worker processes start without JAX."""

import pkgutil
import subprocess
import sys

import wsolax.evaluation


def test_every_protocol_module_imports_without_jax():
    modules = [f"wsolax.evaluation.{m.name}" for m in pkgutil.iter_modules(wsolax.evaluation.__path__)]
    assert "wsolax.evaluation.evaluator" in modules and len(modules) >= 10
    code = ("import importlib, sys\n"
            f"for name in {modules!r}:\n"
            "    importlib.import_module(name)\n"
            "bad = sorted(m for m in sys.modules if m == 'jax' or m.startswith(('jax.', 'flax')))\n"
            "print(bad)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_the_check_sees_jax_when_a_module_imports_it():
    code = "import sys, wsolax.localization.cams\nprint('jax' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"
