#!/usr/bin/env bash
# The prepared GPU check, in phases:
#   install   install the carried wheels (.whl/a, .whl/b, .whl/k, whichever came) and this package into .site/
#   tests     pytest -m gpu: the predictor on CUDA against the CPU, bf16, prefetch, torch.compile (~1 min)
#   model     the full-size model alone, batch 4 and 8, split by part, with and without the geometry token (~2 min)
#   model16   the same at batch 8 with the comparator (DINOv2, CACH) in bf16: what fp32's fidelity costs
#   masks     the mask-level comparators at full size, batch 4, every proposal kept (random weights)
#   compile   the same with model.compile=[vision,detector], batch 8 (compiling takes minutes)
#   pipeline  a 16384 x 16384 synthetic scene, 1 worker, against the model alone (~5 min at 150 ms/pair)
#
# The device has torch, timm, transformers, pandas, pyarrow, scipy and pytest, not the rest. A call
# carries at most 64 MiB with the working tree (about 29 MB), so the wheels travel in two calls on
# the same warm machine; .site/ (ignored) stays there between them.
# Here, once:
#   bash bench/device.sh --fetch     # .whl/a (rasterio), .whl/b (the rest), the versions installed here
# Device call 1, carry [".whl/a"]:   bash bench/device.sh install
# Device call 2, carry [".whl/b"]:   OUT=$OUT bash bench/device.sh install tests model pipeline
# The model phases need no raster stack: one call, carry [".whl/k"] (affine, for the tests' helpers):
#   OUT=$OUT bash bench/device.sh install tests model model16 masks
# Results (logs with JSON lines) land under $OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
BIG="rasterio"
REST="dask distributed rioxarray xarray zarr numcodecs donfig crc32c google-crc32c affine pyproj
      partd locket tblib zict tornado click-plugins cligj shapely geopandas
      jsonschema jsonschema-specifications referencing rpds-py"
WITH_DEPS="pystac"  # a meta-package: its code is in pystac-core and one pystac-ext-* per extension
if [ "${1:-}" = "--fetch" ]; then
  fetch() {  # fetch DIR DEPS PKG...: each at the version installed here (what CI tests), for the device's CPython
    local dir=$1 deps=$2; shift 2
    for pkg in "$@"; do
      local spec=$pkg version
      version=$(python3 -c "import importlib.metadata as m; print(m.version('$pkg'))" 2>/dev/null) \
        && spec="$pkg==$version"
      python3 -m pip download -q $deps --only-binary=:all: --python-version "${PYVER:-3.12}" --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any -d "$dir" "$spec" \
        || echo "could not fetch $spec" >&2
    done
  }
  rm -rf .whl && fetch .whl/a --no-deps $BIG && fetch .whl/b --no-deps $REST && fetch .whl/b "" $WITH_DEPS
  fetch .whl/k --no-deps affine
  rm -f .whl/b/python_dateutil-*  # pystac's one dependency outside pystac: the device image has it
  du -sh .whl/a .whl/b .whl/k
  exit 0
fi
SITE=$PWD/.site
export PYTHONUNBUFFERED=1 PYTHONPATH=$SITE PATH=$SITE/bin:$PATH TORCHINDUCTOR_CACHE_DIR=$PWD/.site/inductor
OUT=${OUT:-bench/out}
mkdir -p "$OUT"
for phase in "$@"; do
  echo "== $phase $(date +%T)"
  case $phase in
    install)
      for dir in .whl/a .whl/b .whl/k; do
        ls $dir/*.whl >/dev/null 2>&1 || continue
        python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target "$SITE" $dir/*.whl || exit 1
      done
      python3 -m pip install -q --no-deps --no-build-isolation --upgrade --target "$SITE" . || exit 1
      nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$OUT/gpu.txt" ;;
    tests)    timeout 120 python3 -m pytest -q -m gpu -p no:cacheprovider tests/kernels/predictors/test_device.py ;;
    model)    timeout 200 python3 bench/model.py --config full --batch-sizes 4,8 ;;
    model16)  timeout 150 python3 bench/model.py --config full --batch-sizes 8 --set model.comparator_precision=bf16 ;;
    masks)    timeout 300 python3 bench/model.py --config full --mask-comparators --batch-sizes 4 --repeats 2 \
                --set amg.pred_iou_thresh=0 --set amg.stability_score_thresh=0 --set model.confidence_threshold=0 ;;
    compile)  timeout 400 python3 bench/model.py --config full --batch-sizes 8 \
                --set 'model.compile=[vision,detector]' ;;
    pipeline) timeout 400 python3 bench/pipeline.py --config default --set model.random_init=true \
                --small 0 --large 16384 --workers 1 --scaling-workers 0 ;;
    *)        echo "unknown phase $phase (install, tests, model, model16, masks, compile, pipeline)" >&2; exit 2 ;;
  esac 2>&1 | tee "$OUT/$phase.log"
done
