#!/usr/bin/env bash
# The prepared GPU check, in phases (default: tests model pipeline, about 8 minutes at the
# naive 150 ms per pair; one device call allows 10):
#   tests     pytest -m gpu: the predictor on CUDA against the CPU, bf16, prefetch, torch.compile (~1 min)
#   model     the full-size model alone, batch 4 and 8, split by part (~1.5 min)
#   compile   the same with model.compile=[vision,detector], batch 8 (compiling takes minutes)
#   pipeline  a 16384 x 16384 synthetic scene, 1 worker, against the model alone (~5 min)
#
# Here, before the call (the device has torch, timm, transformers, pytest but not the rest):
#   echo /.whl/ >> .git/info/exclude
#   bash bench/device.sh --fetch          # downloads the missing wheels into .whl/
# On the device (carry .whl):
#   bash bench/device.sh [PHASE...]       # results (JSON lines) under $OUT
set -uo pipefail
cd "$(dirname "$0")/.."
WHEELS="dask distributed rasterio rioxarray xarray zarr numcodecs donfig crc32c google-crc32c affine pyproj
        cloudpickle partd locket toolz fsspec msgpack psutil sortedcontainers tblib zict tornado
        click-plugins cligj pandas tzdata safetensors"
if [ "${1:-}" = "--fetch" ]; then
  for pkg in $WHEELS; do
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
      --platform any -d .whl "$pkg" || echo "could not fetch $pkg" >&2
  done
  exit 0
fi
OUT=${OUT:-bench/out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || exit 1
python3 -m pip install -q --no-deps --no-build-isolation --target /tmp/site . || exit 1
export PYTHONPATH=/tmp/site PATH=/tmp/site/bin:$PATH
export TORCHINDUCTOR_CACHE_DIR=/tmp/inductor
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$OUT/gpu.txt"
for phase in ${*:-tests model pipeline}; do
  echo "== $phase $(date +%T)"
  case $phase in
    tests)    timeout 120 python3 -m pytest -q -m gpu -p no:cacheprovider tests/kernels/test_device.py ;;
    model)    timeout 150 python3 bench/model.py --config full --batch-sizes 4,8 ;;
    compile)  timeout 400 python3 bench/model.py --config full --batch-sizes 8 \
                --set 'model.compile=[vision,detector]' ;;
    pipeline) timeout 400 python3 bench/pipeline.py --config default --set model.random_init=true \
                --small 0 --large 16384 --workers 1 --scaling-workers 0 ;;
    *)        echo "unknown phase $phase (tests, model, compile, pipeline)" >&2; exit 2 ;;
  esac 2>&1 | tee "$OUT/$phase.log"
done
