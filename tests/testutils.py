"""Shared fakes for the tests: tiny georeferenced GeoTIFF pairs, the numpy oracle, real Dask processes.

rasterio is imported by the helpers that read or write rasters, not here: the GPU image
that runs ``tests/kernels/predictors/test_device.py`` (``bench/device.sh``) has no rasterio.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine

from s2c_batch.kernels.comparators.classical.cva import cva_probability
from s2c_batch.kernels.model_config import ModelConfig
from s2c_batch.kernels.raster.encode import encode_products

CRS = "EPSG:32631"
TRANSFORM = Affine(0.5, 0.0, 500000.0, 0.0, -0.5, 5000000.0)
REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"

#: The real architectures (DINOv2 + CACH, SAM 3 + the tiny vocabulary), tiny and random, on the CPU.
TINY_MODEL = ModelConfig(
    device="cpu",
    batch_size=2,
    backbone="tiny",
    backbone_input_size=252,
    sam3_size="tiny",
    identifier_input_size=84,
    vocab="tiny",
    random_init=True,
)


def write_tif(path: Path, data: np.ndarray, *, crs: str = CRS, transform: Affine = TRANSFORM,
              nodata: float | None = None, tiled: bool = False) -> Path:
    """Write ``data`` [C, H, W] as a GeoTIFF."""
    c, h, w = data.shape
    profile = {"driver": "GTiff", "width": w, "height": h, "count": c, "dtype": data.dtype.name,
               "crs": crs, "transform": transform, "nodata": nodata}
    if tiled:
        profile.update(tiled=True, blockxsize=256, blockysize=256)
    import rasterio
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


def write_masked_tif(path: Path, data: np.ndarray, mask: np.ndarray, *, kind: str = "internal",
                     jpeg: bool = False, crs: str = CRS, transform: Affine = TRANSFORM) -> Path:
    """Write ``data`` [C, H, W] uint8 with its validity ``mask`` [H, W] (True = observed), no nodata.

    Args:
        kind: ``internal`` (a mask band inside the TIFF, ``GDAL_TIFF_INTERNAL_MASK``),
            ``sidecar`` (a ``.msk`` file beside it) or ``alpha`` (an extra alpha band).
        jpeg: JPEG-compressed (YCbCr for 3 bands), tiled 256: the usual orthophoto delivery.
    """
    import rasterio

    c, h, w = data.shape
    profile: dict[str, Any] = {"driver": "GTiff", "width": w, "height": h, "count": c, "dtype": "uint8",
                               "crs": crs, "transform": transform}
    if jpeg:
        profile.update(compress="JPEG", tiled=True, blockxsize=256, blockysize=256, jpeg_quality=90)
        if c == 3:
            profile["photometric"] = "YCBCR"
    byte_mask = np.where(mask, 255, 0).astype(np.uint8)
    if kind == "alpha":
        profile.update(count=c + 1, photometric="RGB" if c == 3 else None, alpha="YES")
        profile = {k: v for k, v in profile.items() if v is not None}
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(data, list(range(1, c + 1)))
            dst.write(byte_mask, c + 1)
        return path
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=kind == "internal"):
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(data)
            dst.write_mask(byte_mask)
    return path


def make_pair(tmp: Path, height: int, width: int, *, seed: int = 0, bands: int = 3,
              nodata: int | None = None, **kw: object) -> tuple[Path, Path]:
    """A uint8 pair with smooth texture, noise and planted rectangular changes.

    With ``nodata``, a border strip of t1 and a square in t2 are set to nodata.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([(np.sin(yy / (7 + k) + xx / (11 + k)) * 60 + 120) for k in range(bands)])
    a = base + rng.normal(0, 6, base.shape)
    b = base + rng.normal(0, 6, base.shape)
    for _ in range(max(1, height * width // 20000)):
        r, c = rng.integers(0, height), rng.integers(0, width)
        hh, ww = rng.integers(4, 40, size=2)
        b[:, r : r + hh, c : c + ww] = rng.integers(0, 255, size=(bands, 1, 1))
    a = np.clip(a, 1, 254).astype(np.uint8)
    b = np.clip(b, 1, 254).astype(np.uint8)
    if nodata is not None:
        a[:, :, : max(1, width // 10)] = nodata
        b[:, height // 3 : height // 2, width // 3 : width // 2] = nodata
    p1 = write_tif(tmp / "t1.tif", a, nodata=nodata, **kw)  # type: ignore[arg-type]
    p2 = write_tif(tmp / "t2.tif", b, nodata=nodata, **kw)  # type: ignore[arg-type]
    return p1, p2


def cva_oracle(t1: Path, t2: Path, *, bands: tuple[int, ...] = (1, 2, 3), threshold: float = 0.5,
               scale: float = 255.0) -> dict[str, np.ndarray]:
    """Whole-scene CVA products computed with plain numpy (the pipeline's exact oracle).

    Returns:
        The encoded products (:func:`encode_products`) and ``prob``, the float32 probability.
    """
    import rasterio
    with rasterio.open(t1) as s1, rasterio.open(t2) as s2:
        a, b = s1.read(list(bands)), s2.read(list(bands))
        nd1, nd2 = s1.nodata, s2.nodata
    valid = np.ones(a.shape[1:], bool)
    if nd1 is not None:
        valid &= ~(a == nd1).all(axis=0)
    if nd2 is not None:
        valid &= ~(b == nd2).all(axis=0)
    fa = np.clip(a.astype(np.float32) / np.float32(scale), 0, 1)
    fb = np.clip(b.astype(np.float32) / np.float32(scale), 0, 1)
    p = cva_probability(fa, fb)
    return {**encode_products(p.copy(), valid, threshold=threshold), "prob": p}


#: How far blending may move a pointwise probability (sums of w * p divided by sums of w, float64).
BLEND_EPS = 1e-6


def assert_equals_oracle(got: Mapping[str, np.ndarray], oracle: Mapping[str, np.ndarray], *,
                         threshold: float = 0.5) -> None:
    """Products of a run against :func:`cva_oracle`: ``change_prob`` within 1 of the oracle's
    encoding, ``change_mask`` equal except where the oracle's probability lies within
    :data:`BLEND_EPS` of the threshold, and the same nodata."""
    for name in ("change_prob", "change_mask"):
        diff = np.abs(got[name].astype(int) - oracle[name].astype(int))
        assert diff.max() <= 1, f"{name}: max diff {diff.max()}"
        assert ((got[name] == 255) == (oracle[name] == 255)).all(), f"{name}: nodata differs"
    differ = got["change_mask"] != oracle["change_mask"]
    near = np.abs(oracle["prob"] - np.float32(threshold)) <= BLEND_EPS
    assert not (differ & ~near).any(), f"change_mask differs at {int((differ & ~near).sum())} pixels"


def write_sam3_dir(path: Path, *, dtype: str = "bfloat16", image_size: int = 84) -> Path:
    """A local Hugging Face SAM 3 directory: the tiny random model saved in ``dtype`` (its
    ``config.json`` declares it) and a CLIP tokenizer of lower-case letters (ids < 256)."""
    import string

    import torch
    from transformers import CLIPTokenizer

    from s2c_batch.kernels.models.identifier import build_sam3_random

    model = build_sam3_random("tiny", image_size=image_size).to(getattr(torch, dtype))
    model.save_pretrained(str(path))
    vocab = {"!": 0, "<|startoftext|>": 1, "<|endoftext|>": 2}
    for letter in string.ascii_lowercase:
        vocab[letter] = len(vocab)
        vocab[f"{letter}</w>"] = len(vocab)
    CLIPTokenizer(vocab=vocab, merges=[], pad_token="!").save_pretrained(str(path))
    return path


def _first_tensor(value: Any) -> Any:
    """The first tensor in a module's output (a tensor, a list of taps, a ModelOutput)."""
    import torch

    if isinstance(value, torch.Tensor):
        return value
    for item in value.values() if isinstance(value, Mapping) else value:
        found = _first_tensor(item)
        if found is not None:
            return found
    return None


@contextlib.contextmanager
def output_dtypes(modules: Mapping[str, Any]) -> Iterator[dict[str, set[Any]]]:
    """Record the dtype of each named module's output while the block runs (forward hooks).

    With ``"tf32"`` the flags seen by the first module are recorded too, as
    ``(torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32)``.
    """
    import torch

    seen: dict[str, set[Any]] = {name: set() for name in modules}
    seen["tf32"] = set()

    def hook(name: str) -> Any:
        def record(_module: Any, _args: Any, output: Any) -> None:
            seen[name].add(_first_tensor(output).dtype)
            seen["tf32"].add((torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32))
        return record

    handles = [module.register_forward_hook(hook(name)) for name, module in modules.items()]
    try:
        yield seen
    finally:
        for handle in handles:
            handle.remove()


def write_png(path: Path, data: np.ndarray) -> None:
    """Write uint8 ``[C, H, W]`` (or ``[H, W]``) as a PNG, creating its folder (LEVIR-layout fakes)."""
    from s2c_batch.pipeline.learn.dataset import write_png as write

    path.parent.mkdir(parents=True, exist_ok=True)
    write(path, data)


#: OSCD in ../shared/data (Sentinel-2, per-band GeoTIFFs of each city and date, change labels).
OSCD = "ChenHongruixuan_ChangeDetectionRepository/Dataset/OSCD"


def read_oscd_city(data: Path, city: str, bands: tuple[str, ...] = ("B02", "B03", "B04", "B08"),
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """An OSCD city's two dates, its change label and its georeferencing.

    Args:
        data: ``../shared/data``.
        city: the city's folder name (``rennes``).
        bands: the Sentinel-2 bands to stack, in order.

    Returns:
        ``(t1, t2, truth, geo)``: uint16 ``[B, H, W]`` per date, bool ``[H, W]`` changed
        (label 2), and ``{"crs", "transform"}`` of the first band read.
    """
    import warnings

    import rasterio
    from rasterio.errors import NotGeoreferencedWarning

    root = data / OSCD
    dates = []
    geo: dict[str, Any] = {}
    for folder in ("imgs_1", "imgs_2"):
        stack = []
        for band in bands:
            path = next((root / "Onera Satellite Change Detection dataset - Images" / city / folder)
                        .glob(f"*_{band}.tif"))
            with rasterio.open(path) as src:
                stack.append(src.read(1))
                geo = {"crs": src.crs, "transform": src.transform}
        dates.append(np.stack(stack))
    label = root / "Onera Satellite Change Detection dataset - Train Labels" / city / "cm" / f"{city}-cm.tif"
    with warnings.catch_warnings():  # OSCD's labels carry no georeferencing; only pixels are used
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(label) as src:
            truth = src.read(1) == 2
    return dates[0], dates[1], truth, geo


def read_band(path: Path) -> np.ndarray:
    import rasterio
    with rasterio.open(path) as src:
        return src.read(1)


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """What a worker on another machine has: a PATH, a HOME, and whatever ``extra`` says."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), **extra}
    if os.environ.get("PYTHONPATH"):  # a checkout run without installing s2c-batch
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return env


@dataclass
class RealCluster:
    """A `dask scheduler` and `dask worker` processes started on 127.0.0.1."""

    address: str
    scheduler: subprocess.Popen[bytes]
    workers: list[subprocess.Popen[bytes]]
    log_dir: Path

    @classmethod
    def start(cls, log_dir: Path, n_workers: int = 2, *, prefix: str = "test-worker",
              nanny: bool = False, worker_env: Mapping[str, str] | None = None,
              preload: Path | None = None) -> RealCluster:
        """Start a scheduler on a free port of 127.0.0.1 and ``n_workers`` workers; wait for them.

        ``worker_env``: the workers' whole environment (a machine that shares nothing with
        this one); ``None`` = this process's. ``preload``: a Python file every worker runs
        at start (``dask worker --preload``), e.g. a test-only hook such as ``stallhook.py``.
        """
        port = free_port()
        sched = subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
             "--port", str(port), "--dashboard-address", "127.0.0.1:0", "--no-show"],
            stdout=open(log_dir / "scheduler.log", "ab"), stderr=subprocess.STDOUT,
        )
        cluster = cls(f"tcp://127.0.0.1:{port}", sched, [], log_dir)
        try:
            deadline = time.time() + 60
            while time.time() < deadline:
                with socket.socket() as s:
                    if s.connect_ex(("127.0.0.1", port)) == 0:
                        break
                time.sleep(0.2)
            for i in range(n_workers):
                cluster.start_worker(f"{prefix}-{i}", nanny=nanny, env=worker_env, preload=preload)
            cluster.wait_for_workers(n_workers)
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def stop(self) -> None:
        """Terminate the workers and the scheduler; kill what has not stopped after 5 s.

        A worker sometimes hangs in its own close on SIGTERM (distributed logs a
        CancelledError from ``plugin_remove``); nothing of the tests is lost by killing it.
        """
        procs = [*self.workers, self.scheduler]
        for proc in procs:
            proc.terminate()
        deadline = time.time() + 5
        for proc in procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def start_worker(self, name: str, *, nanny: bool = False, env: Mapping[str, str] | None = None,
                     preload: Path | None = None) -> subprocess.Popen[bytes]:
        """Start one more single-threaded worker process.

        Without a nanny (the default) its pid is the worker's; with one, the nanny's,
        and the worker can be restarted (``Client.restart_workers``; a restarted worker
        runs ``preload`` again).
        """
        log = open(self.log_dir / f"{name}.log", "ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_worker", self.address, "--nthreads", "1",
             "--nworkers", "1", "--nanny" if nanny else "--no-nanny", "--name", name, "--host", "127.0.0.1",
             "--no-dashboard", "--memory-limit", "4GiB", *(["--preload", str(preload)] if preload else [])],
            stdout=log, stderr=subprocess.STDOUT, env=None if env is None else dict(env),
        )
        self.workers.append(proc)
        return proc

    def wait_for_workers(self, n: int, timeout: float = 90) -> None:
        from distributed import Client

        with Client(self.address, timeout="30s") as client:
            client.wait_for_workers(n, timeout=timeout)


@contextlib.contextmanager
def real_cluster(log_dir: Path, *, workers: int, prefix: str = "test-worker") -> Iterator[RealCluster]:
    """Start `dask scheduler` and ``workers`` `dask worker` processes on 127.0.0.1; stop them on exit."""
    cluster = RealCluster.start(log_dir, workers, prefix=prefix)
    try:
        yield cluster
    finally:
        cluster.stop()


def tile_extents(path: Path) -> list[tuple[int, int]]:
    """``(offset, bytes)`` of every tile of a classic little/big-endian tiled TIFF (TileOffsets, TileByteCounts)."""
    data = path.read_bytes()
    bo = "<" if data[:2] == b"II" else ">"
    ifd = struct.unpack(bo + "I", data[4:8])[0]
    n = struct.unpack(bo + "H", data[ifd : ifd + 2])[0]
    tags: dict[int, tuple[int, ...]] = {}
    for i in range(n):
        entry = data[ifd + 2 + 12 * i : ifd + 14 + 12 * i]
        tag, typ, count = struct.unpack(bo + "HHI", entry[:8])
        fmt = {3: "H", 4: "I", 16: "Q"}.get(typ)
        if fmt is None:
            continue
        size = struct.calcsize(fmt) * count
        raw = entry[8 : 8 + size] if size <= 4 else data[struct.unpack(bo + "I", entry[8:12])[0] :][:size]
        tags[tag] = struct.unpack(bo + fmt * count, raw)
    return list(zip(tags[324], tags[325], strict=True))


def damage_tile(path: Path, index: int) -> None:
    """Overwrite the start of one tile's compressed bytes with garbage (the file still opens)."""
    offset, _ = tile_extents(path)[index]
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(b"\xff" * 32)


def write_damaged_copy(src: Path, dst: Path, *, tile: int) -> Path:
    """``src`` rewritten as a deflate-tiled GeoTIFF (256 px tiles) with tile ``tile`` damaged."""
    import rasterio
    with rasterio.open(src) as s:
        profile, data = s.profile, s.read()
    profile.update(tiled=True, blockxsize=256, blockysize=256, compress="deflate")
    with rasterio.open(dst, "w", **profile) as d:
        d.write(data)
    damage_tile(dst, tile)
    return dst


#: Files of a run that differ between two runs of the same inputs by design.
RUN_RECORDS = {"run.json", ".s2c/blocks.done", ".s2c/lock"}


def assert_same_products(out: Path, ref: Path) -> None:
    """``out`` holds byte for byte the products of ``ref`` (the Zarr store's every file, COGs,
    polygons, quicklook); the STAC item is equal but for its processing times."""
    import json

    files = {p.relative_to(ref).as_posix() for p in ref.rglob("*") if p.is_file()} - RUN_RECORDS
    got = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()} - RUN_RECORDS
    assert got == files, f"files differ: extra {sorted(got - files)}, missing {sorted(files - got)}"
    for name in sorted(files):
        a, b = (out / name).read_bytes(), (ref / name).read_bytes()
        if name == "stac-item.json":
            a, b = (json.dumps(_timeless(json.loads(x))) for x in (a, b))  # type: ignore[assignment]
        assert a == b, f"{name} differs from the clean run's"


def _timeless(item: dict) -> dict:  # type: ignore[type-arg]
    props = dict(item["properties"], created=None, datetime=None)
    return {**item, "id": None, "properties": props}


def fill_disk(folder: Path) -> Path:
    """Fill the filesystem of ``folder`` with one ballast file until it has no space left."""
    ballast = folder / "ballast"
    with open(ballast, "wb", buffering=0) as f:
        for size in (1 << 20, 1 << 12, 1):
            try:
                while True:
                    f.write(b"\0" * size)
            except OSError:
                pass
    return ballast


def series_oracle(values: list[int], persistence: int, against: str) -> tuple[int, int, int, int]:
    """The series products of one pixel whose pairs' masks are ``values`` (255 = unknown), by the definition.

    The pixel differs from its start at each pair's end date (the mask itself against the
    first date; the parity of the changes so far against the previous one). A run of
    "differs" that begins at a known date ``t`` and is followed by ``persistence`` more known
    dates that still differ is a lasting change at ``t``; unknown dates are left out. Without
    one, a pixel whose last known date still differs is pending (too recent to tell).

    Returns:
        ``(first_change, change_count, persistent_change, pending)``; 255, 255, 255, 0 when never known.
    """
    if all(v == 255 for v in values):
        return 255, 255, 255, 0
    if against == "first":
        differs = list(values)
    else:
        parity, differs = 0, []
        for v in values:
            parity ^= int(v == 1)
            differs.append(255 if v == 255 else parity)
    known = [(j + 1, v) for j, v in enumerate(differs) if v != 255]
    first, before = 0, 0
    for i, (t, v) in enumerate(known):
        if v == 1 and before == 0:
            after = known[i + 1 : i + 1 + persistence]
            if len(after) == persistence and all(x == 1 for _, x in after):
                first = t
                break
        before = v
    pending = int(first == 0 and known[-1][1] == 1)
    return first, sum(v == 1 for v in values), int(first > 0), pending


def series_products_oracle(masks: np.ndarray, persistence: int, against: str) -> dict[str, np.ndarray]:
    """:func:`series_oracle` of every pixel of uint8 ``[P, h, w]`` pair masks: the three products and
    ``pending`` (0/1), uint8 ``[h, w]``."""
    names = ("first_change", "change_count", "persistent_change", "pending")
    out = {k: np.zeros(masks.shape[1:], np.uint8) for k in names}
    columns: dict[bytes, tuple[int, int, int, int]] = {}
    for r in range(masks.shape[1]):
        for c in range(masks.shape[2]):
            key = masks[:, r, c].tobytes()
            if key not in columns:
                columns[key] = series_oracle(masks[:, r, c].tolist(), persistence, against)
            for name, value in zip(names, columns[key], strict=True):
                out[name][r, c] = value
    return out


#: Where tests keep what a person may want to look at afterwards (a screenshot of the night's report).
ARTEFACTS = Path(os.environ.get("S2C_TEST_ARTEFACTS", REPO / ".artefacts"))

#: The flags every headless Chromium of the tests starts with (and a fresh --user-data-dir).
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--host-resolver-rules=MAP * ~NOTFOUND")


def chromium() -> str | None:
    """Debian's ``chromium`` (or Google's), when installed."""
    import shutil

    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def image_states(page: Path, browser: str, profile: Path) -> list[dict[str, Any]]:
    """Load ``page`` in headless Chromium, offline, and return the state of each of its images.

    A copy of the page beside it gets a script that writes, once the page has loaded, each
    image's ``alt``, ``complete`` and natural size into the DOM, which ``--dump-dom`` prints.
    """
    import json

    probe = page.with_name(f".probe-{page.name}")
    script = ("<script>window.addEventListener('load',()=>{const p=document.createElement('pre');"
              "p.id='s2c-image-states';p.textContent=JSON.stringify([...document.images].map(i=>({alt:i.alt,"
              "complete:i.complete,width:i.naturalWidth,height:i.naturalHeight})));document.body.appendChild(p)});"
              "</script>")
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", f"{script}</body>"), encoding="utf-8")
    try:
        done = subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=10000",
                               "--run-all-compositor-stages-before-draw", "--dump-dom", probe.resolve().as_uri()],
                              capture_output=True, text=True, timeout=120, check=True)
    finally:
        probe.unlink()
    dom = done.stdout
    start = dom.index('<pre id="s2c-image-states">') + len('<pre id="s2c-image-states">')
    import html

    return list(json.loads(html.unescape(dom[start : dom.index("</pre>", start)])))


def screenshot(page: Path, target: Path, browser: str, profile: Path, *, size: str = "1280,2400") -> Path:
    """A PNG of ``page`` as headless Chromium renders it, offline."""
    target.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={size}",
                    "--virtual-time-budget=10000", f"--screenshot={target}", page.resolve().as_uri()],
                   capture_output=True, timeout=120, check=True)
    return target


#: A 300 x 260 px scene in blocks of 128: nine blocks, so a run can stop between any two
#: (the fault and recovery tests; fixtures ``scene`` and ``clean`` in tests/pipeline/run).
SMALL = ["tiling.tile_size=128", "tiling.overlap=32", "tiling.block_size=128", "tiling.chunk_size=128"]


def run_small(scene: tuple[Path, Path], out: Path, scheduler: str, **kw: Any) -> Any:
    """A ``cva`` run of ``scene`` with :data:`SMALL` on the cluster at ``scheduler``; its ``RunResult``."""
    from s2c_batch.pipeline.config import load_config
    from s2c_batch.pipeline.run.runner import run_change_detection

    return run_change_detection(*scene, out, load_config("cva", SMALL), scheduler=scheduler, progress=False, **kw)
