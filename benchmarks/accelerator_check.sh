#!/usr/bin/env bash
# One-shot GPU run of benchmarks/accelerator_check.py on a machine whose Python has JAX (CUDA) and
# PyTorch (CUDA) but not wsolax's own dependencies: the lending workplace's GPU image lacks only
# ml_collections among what the benchmark imports, so a wheel of it carried in .whl/ is installed
# to a scratch folder first (no network there). Arguments go to the script, e.g.
#   bash benchmarks/accelerator_check.sh --out "$OUT/accelerator_check.json"
# One-time preparation on a machine with network, in the repo root (.whl/ is git-ignored):
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#     --implementation cp --platform manylinux2014_x86_64 -d .whl ml_collections==1.1.0
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! "$PY" -c "import ml_collections" 2>/dev/null; then
  if compgen -G ".whl/*.whl" >/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/accelerator_check_site .whl/*.whl
    export PYTHONPATH=/tmp/accelerator_check_site${PYTHONPATH:+:$PYTHONPATH}
  else
    echo "ml_collections is not importable and no wheel is in .whl/ (see this file's header)" >&2
    exit 2
  fi
fi
# Unbuffered: a run killed at its time limit still leaves its progress in the log.
export PYTHONUNBUFFERED=1
"$PY" -c "import jax, torch; print('jax', jax.__version__, jax.devices(), '| torch', \
torch.__version__, 'cuda', torch.cuda.is_available())"
exec "$PY" benchmarks/accelerator_check.py "$@"
