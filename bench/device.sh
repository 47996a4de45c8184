#!/usr/bin/env bash
# The prepared GPU check (one device call, under 8 minutes): model alone at full size, then the
# pipeline on a 16384 x 16384 synthetic scene against the model alone, in one run.
#
# Here, before the call (the device has torch, timm, transformers, pytest but not the rest):
#   echo /.whl/ >> .git/info/exclude
#   bash bench/device.sh --fetch          # downloads the missing wheels into .whl/
# On the device (carry .whl):
#   bash bench/device.sh                  # results (JSON lines) under $OUT
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
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$OUT/gpu.txt"
timeout 200 python3 bench/model.py --config full --batch-sizes 1,4,8 2>&1 | tee "$OUT/model.log"
timeout 300 python3 bench/pipeline.py --config default --set model.random_init=true \
  --small 8192 --large 16384 --workers 1 2>&1 | tee "$OUT/pipeline.log"
