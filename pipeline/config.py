"""Run configuration: YAML for people, frozen typed dataclasses for code.

A config file has one mapping per section (``input``, ``tiling``, ``model``,
``output``, ``cluster``, ``storage``, ``series``, and the comparators' own ``fit``, ``pca_kmeans``, ``irmad``,
``dcva``, ``amg``, ``anychange``, ``inst_ceg``, ``dynamicearth``, ``ucd_scm``). Missing
keys take the dataclass defaults; unknown sections or keys, values of the wrong type and
values out of range raise :class:`ConfigError` naming the key, the valid keys and the fix.

Example:
    >>> cfg = load_config(None, ["tiling.block_size=1024", "model.comparator=cva"])
    >>> cfg.tiling.block_size, cfg.model.comparator
    (1024, 'cva')
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml

from s2c_batch.kernels.comparators.options import (
    AMGOptions,
    AnyChangeOptions,
    ComparatorOptions,
    DCVAOptions,
    DynamicEarthOptions,
    FitOptions,
    InstCEGOptions,
    IRMADOptions,
    PCAKMeansOptions,
    UCDSCMOptions,
)
from s2c_batch.kernels.errors import ConfigError
from s2c_batch.kernels.model_config import ModelConfig, check_side_by_side, comparator_settings
from s2c_batch.kernels.resources import packaged_configs_dir

if TYPE_CHECKING:  # torch: imported by the runs that use it (untiled runs import none)
    from s2c_batch.kernels.comparators.mask_level.base import MaskComparator


@dataclass(frozen=True)
class InputConfig:
    """How the two scenes are read (YAML section ``input``).

    Attributes:
        bands: 1-based band indexes to use, in the order the model expects (RGB).
        scale: divisor that maps raw values to [0, 1]; ``None`` = the dtype's
            maximum for integer rasters (uint8 255, uint16 65535). Float rasters
            need it set (e.g. 1.0 for reflectance already in [0, 1]).
        nodata: nodata value overriding the files' own; ``None`` = the files'.
        align: ``strict`` refuses scenes whose CRS, transform or shape differ;
            ``reproject`` warps t2 onto t1's grid, lazily, block by block.
        resampling: resampling used by ``align: reproject``.
        asset: the asset to read when T1/T2 is a STAC Item; ``None`` = its first
            GeoTIFF/COG asset with the bands asked for.
        mask_t1: an external mask raster of t1 (a path, a URL, or the name of an asset
            when t1 is a STAC Item); its pixels that ``mask_values`` or ``mask_preset``
            flag were not observed. ``None`` = the scene's own validity only (nodata,
            NaN, its mask band or alpha band).
        mask_t2: the same for t2.
        mask_values: the values of ``mask_t1`` / ``mask_t2`` that mean "not observed";
            ``None`` = any nonzero value (unless ``mask_preset`` is set).
        mask_preset: a standard quality layer: ``s2_scl`` (Sentinel-2 L2A SCL: no data,
            saturated, cloud shadow, cloud, cirrus, snow) or ``landsat_qa_pixel``
            (Landsat Collection 2 QA_PIXEL bits 0-5: fill, dilated cloud, cirrus, cloud,
            cloud shadow, snow).
        coregister: ``none`` reads t2 as it is; ``global`` resamples t2 onto t1's grid
            shifted by the median shift the co-registration QA measures, before any
            comparator (lazily, as ``align: reproject`` does).
        max_shift_px: a median shift (or a block's shift) longer than this many pixels
            is flagged in ``run.json`` and logged as a warning.
        coreg_qa: measure the shift between the dates per block (phase correlation) and
            record it in ``run.json`` and the STAC item; ``coregister: global`` needs it.
        coreg_band: the 1-based band of the scenes the shift is measured on; ``None`` =
            the luminance (mean) of ``bands``.
        coreg_window: side in pixels of the window measured at the centre of each block.
        coreg_min_confidence: blocks whose correlation after alignment is below this
            (0..1) are left out of the median (water, fields, clouds, change).
    """

    bands: tuple[int, ...] = (1, 2, 3)
    scale: float | None = None
    nodata: float | None = None
    align: Literal["strict", "reproject"] = "strict"
    resampling: Literal["nearest", "bilinear", "cubic", "lanczos"] = "bilinear"
    asset: str | None = None
    mask_t1: str | None = None
    mask_t2: str | None = None
    mask_values: tuple[float, ...] | None = None
    mask_preset: Literal["s2_scl", "landsat_qa_pixel"] | None = None
    coregister: Literal["none", "global"] = "none"
    max_shift_px: float = 0.5
    coreg_qa: bool = True
    coreg_band: int | None = None
    coreg_window: int = 512
    coreg_min_confidence: float = 0.3

    def __post_init__(self) -> None:
        if not self.bands or any(b < 1 for b in self.bands):
            raise ConfigError(
                f"input.bands must be a non-empty list of 1-based band indexes, got {list(self.bands)!r}"
            )
        if self.scale is not None and self.scale <= 0:
            raise ConfigError(f"input.scale must be > 0, got {self.scale!r}")
        if self.mask_values is not None and self.mask_preset is not None:
            raise ConfigError(
                f"input.mask_values {list(self.mask_values)!r} and input.mask_preset {self.mask_preset!r} both "
                "say which mask values are not observed; set only one of them"
            )
        if self.mask_values is not None and not self.mask_values:
            raise ConfigError("input.mask_values must list at least one value (or be null: any nonzero value)")
        for key in ("mask_t1", "mask_t2"):
            if getattr(self, key) is not None and not str(getattr(self, key)).strip():
                raise ConfigError(f"input.{key} is empty; give a mask raster (path, URL or STAC asset name) or null")
        if self.max_shift_px <= 0:
            raise ConfigError(f"input.max_shift_px must be > 0 pixels, got {self.max_shift_px!r}")
        if self.coreg_band is not None and self.coreg_band < 1:
            raise ConfigError(f"input.coreg_band must be a 1-based band index or null, got {self.coreg_band!r}")
        if self.coreg_window < 64:
            raise ConfigError(f"input.coreg_window must be >= 64 pixels, got {self.coreg_window!r}")
        if not 0 <= self.coreg_min_confidence <= 1:
            raise ConfigError(
                f"input.coreg_min_confidence must be within [0, 1], got {self.coreg_min_confidence!r}"
            )
        if self.coregister == "global" and not self.coreg_qa:
            raise ConfigError(
                "input.coregister: global corrects t2 by the shift the co-registration QA measures; "
                "set input.coreg_qa: true, or input.coregister: none"
            )


@dataclass(frozen=True)
class TilingConfig:
    """The tile grid and the output blocks (YAML section ``tiling``).

    Attributes:
        tile_size: side of a model tile in pixels.
        overlap: pixels shared by neighbouring tiles (stride = tile_size - overlap).
        block_size: side of an output block = one Dask task = one Zarr shard.
        chunk_size: side of a Zarr chunk inside a shard (must divide block_size).
    """

    tile_size: int = 512
    overlap: int = 128
    block_size: int = 4096
    chunk_size: int = 512

    def __post_init__(self) -> None:
        if self.tile_size < 16:
            raise ConfigError(f"tiling.tile_size must be >= 16, got {self.tile_size!r}")
        if not 0 <= self.overlap < self.tile_size:
            raise ConfigError(
                f"tiling.overlap must be within [0, tile_size={self.tile_size}), got {self.overlap!r}"
            )
        if self.chunk_size < 16:
            raise ConfigError(f"tiling.chunk_size must be >= 16, got {self.chunk_size!r}")
        if self.block_size < self.tile_size:
            raise ConfigError(
                f"tiling.block_size ({self.block_size!r}) must be >= tiling.tile_size "
                f"({self.tile_size!r}): a block's tiles may only reach its next neighbours"
            )
        if self.block_size < self.chunk_size or self.block_size % self.chunk_size:
            raise ConfigError(
                f"tiling.block_size ({self.block_size!r}) must be a multiple of "
                f"tiling.chunk_size ({self.chunk_size!r}): one block is one Zarr shard"
            )


@dataclass(frozen=True)
class OutputConfig:
    """Products written into ``--out`` (YAML section ``output``).

    Attributes:
        cog: also write Cloud-Optimized GeoTIFFs next to the Zarr store.
        compress: COG compression (``deflate``, ``zstd``, ``lzw``).
        compress_level: the compression level of ``deflate`` (1-9) or ``zstd`` (1-22);
            ``None`` = 1, the fastest: on a 16384 x 16384 ``change_prob`` deflate level 6
            took 1.8x the CPU of level 1 for a file 1.6% smaller.
        overview_resampling: resampling of COG overviews.
        stac: write ``stac-item.json`` (a STAC Item of the run).
        quicklook: write ``quicklook.png`` (t1 | t2 | change overlay).
        polygons: write ``changes.parquet`` (GeoParquet change polygons).
        min_area_m2: the minimum mapping unit: changed regions (4-connected, measured whole
            across block borders) smaller than this many m2 are dropped from ``change_mask``
            and the polygons; ``None`` = keep every region.
    """

    cog: bool = True
    compress: Literal["deflate", "zstd", "lzw"] = "deflate"
    compress_level: int | None = None
    overview_resampling: Literal["nearest", "mode", "average"] = "nearest"
    stac: bool = True
    quicklook: bool = True
    polygons: bool = True
    min_area_m2: float | None = None

    def __post_init__(self) -> None:
        if self.min_area_m2 is not None and self.min_area_m2 <= 0:
            raise ConfigError(
                f"output.min_area_m2 must be > 0 m2 (or null: keep every changed region), got {self.min_area_m2!r}"
            )
        limit = {"deflate": 9, "zstd": 22}.get(self.compress)
        if self.compress_level is not None and (limit is None or not 1 <= self.compress_level <= limit):
            raise ConfigError(
                f"output.compress_level must be within [1, {limit}] for {self.compress}, got {self.compress_level!r}"
                if limit else f"output.compress_level does not apply to {self.compress}; set it to null"
            )

@dataclass(frozen=True)
class SeriesConfig:
    """How ``s2c-batch series`` reads a series of dates (YAML section ``series``).

    Neither key changes the products of a pair, so neither is in a pair's fingerprint:
    changing them recomputes the series products, never a pair.

    Attributes:
        persistence: further known dates a change must still differ from the pixel's
            state before it to be lasting (``persistent_change``, ``first_change``); a change
            that comes back sooner is flicker. 0 = every change is lasting.
        against: ``previous``: each date is compared with the date before it (consecutive
            pairs); ``first``: each date with the first date of the series.
    """

    persistence: int = 2
    against: Literal["previous", "first"] = "previous"

    def __post_init__(self) -> None:
        if self.persistence < 0:
            raise ConfigError(f"series.persistence must be >= 0 dates, got {self.persistence!r}")


@dataclass(frozen=True)
class ClusterConfig:
    """The LocalCluster started when no ``--scheduler`` is given, and task policy.

    Attributes:
        n_workers: worker processes; ``None`` = one per visible GPU, else
            ``min(2, cores)`` CPU workers.
        threads_per_worker: threads of each worker process (keep 1 for a GPU).
        memory_limit: per-worker memory limit passed to Dask (e.g. ``"8GiB"``); ``auto``
            shares the machine's memory evenly among the workers started
            (:func:`~s2c_batch.pipeline.cluster.connect.local_memory_limit`).
        retries: reruns of a block task that failed with an unexpected error; a
            damaged input or a full disk fails at once, and Dask itself moves the
            tasks of a lost worker (:mod:`~s2c_batch.pipeline.cluster.supervise`); also
            the stalls a block may have before the run fails.
        stall_min_s: seconds a block task may go without progress before its worker
            has finished a step of its kind (the first batch of tiles: loading the
            model, a first call on a GPU).
        stall_factor: afterwards, a block task is stalled once it has gone this many
            times the median step of its kind on that worker without progress; its
            worker is restarted (:mod:`~s2c_batch.pipeline.cluster.deadlines`).
        stall_idle_min_s: the least such deadline, in seconds (never more than
            ``stall_min_s``): heartbeats and pauses of a loaded machine are no stall.
    """

    n_workers: int | None = None
    threads_per_worker: int = 1
    memory_limit: str = "auto"
    retries: int = 2
    stall_min_s: float = 300.0
    stall_factor: float = 10.0
    stall_idle_min_s: float = 30.0

    def __post_init__(self) -> None:
        if self.n_workers is not None and self.n_workers < 1:
            raise ConfigError(f"cluster.n_workers must be >= 1 or null, got {self.n_workers!r}")
        if self.threads_per_worker < 1:
            raise ConfigError(
                f"cluster.threads_per_worker must be >= 1, got {self.threads_per_worker!r}"
            )
        if self.retries < 0:
            raise ConfigError(f"cluster.retries must be >= 0, got {self.retries!r}")
        if self.stall_min_s <= 0:
            raise ConfigError(f"cluster.stall_min_s must be > 0 seconds, got {self.stall_min_s!r}")
        if self.stall_factor < 1:
            raise ConfigError(f"cluster.stall_factor must be >= 1, got {self.stall_factor!r}")
        if self.stall_idle_min_s <= 0:
            raise ConfigError(f"cluster.stall_idle_min_s must be > 0 seconds, got {self.stall_idle_min_s!r}")


@dataclass(frozen=True)
class StorageConfig:
    """Where remote inputs live and how GDAL reaches them (YAML section ``storage``).

    Nothing here is a secret: the section travels to the workers inside the read tasks
    and is written to ``run.json``. Credentials come from each machine's own chain
    (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``, an instance role).

    Attributes:
        endpoint: URL of an S3-compatible endpoint (``https://minio.example:9000``);
            ``None`` = the variable ``AWS_ENDPOINT_URL`` where it is set, else AWS.
        gs_endpoint: URL of the endpoint of ``gs://`` URLs (an emulator, a private endpoint;
            GDAL's ``CPL_GS_ENDPOINT``); ``None`` = the variable ``STORAGE_EMULATOR_HOST``
            where it is set, else Google Cloud Storage.
        region: the S3 region (GDAL's ``AWS_REGION``); ``None`` = GDAL's default.
        anonymous: read public buckets without signing requests.
        profile: a profile of ``~/.aws/credentials`` on every machine (``AWS_PROFILE``).
        allow_http: allow an ``http://`` (unencrypted) endpoint or ``gs_endpoint``.
        max_retry: GDAL's retries of a failed HTTP request (``GDAL_HTTP_MAX_RETRY``).
        retry_delay: seconds before the first retry (``GDAL_HTTP_RETRY_DELAY``).
        gdal_options: extra GDAL configuration options as ``KEY=VALUE`` strings
            (e.g. ``VSI_CACHE=TRUE``); they override s2c-batch's own.
    """

    endpoint: str | None = None
    gs_endpoint: str | None = None
    region: str | None = None
    anonymous: bool = False
    profile: str | None = None
    allow_http: bool = False
    max_retry: int = 5
    retry_delay: float = 0.5
    gdal_options: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("endpoint", "gs_endpoint"):
            value = getattr(self, name)
            if value is not None and not re.match(r"^https?://[^/\s]+/?$", value):
                raise ConfigError(
                    f"storage.{name} must be a URL like https://host:port (scheme and host, no path), "
                    f"got {value!r}"
                )
        if self.max_retry < 0:
            raise ConfigError(f"storage.max_retry must be >= 0, got {self.max_retry!r}")
        if self.retry_delay < 0:
            raise ConfigError(f"storage.retry_delay must be >= 0 seconds, got {self.retry_delay!r}")
        for item in self.gdal_options:
            key = item.split("=", 1)[0]
            if "=" not in item or not re.match(r"^[A-Z][A-Z0-9_]*$", key):
                raise ConfigError(
                    f"storage.gdal_options holds {item!r}; each option must be KEY=VALUE with an "
                    "upper-case GDAL option name (e.g. VSI_CACHE=TRUE)"
                )
            if key in SECRET_OPTIONS:
                raise ConfigError(
                    f"storage.gdal_options must not hold {key}: secrets never go into the config, which "
                    "travels to the workers and into run.json; set it in each machine's environment "
                    "or ~/.aws/credentials (storage.profile)"
                )


#: GDAL options that hold secrets; refused in ``storage.gdal_options``.
SECRET_OPTIONS = frozenset({
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "GS_SECRET_ACCESS_KEY",
    "GS_ACCESS_KEY_ID", "GS_OAUTH2_REFRESH_TOKEN", "GS_OAUTH2_CLIENT_SECRET", "GDAL_HTTP_USERPWD",
    "GDAL_HTTP_BEARER", "AZURE_STORAGE_ACCESS_KEY", "AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_SAS_TOKEN",
})


@dataclass(frozen=True)
class Config:
    """The whole resolved run configuration."""

    input: InputConfig = field(default_factory=InputConfig)
    tiling: TilingConfig = field(default_factory=TilingConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    series: SeriesConfig = field(default_factory=SeriesConfig)
    fit: FitOptions = field(default_factory=FitOptions)
    pca_kmeans: PCAKMeansOptions = field(default_factory=PCAKMeansOptions)
    irmad: IRMADOptions = field(default_factory=IRMADOptions)
    dcva: DCVAOptions = field(default_factory=DCVAOptions)
    amg: AMGOptions = field(default_factory=AMGOptions)
    anychange: AnyChangeOptions = field(default_factory=AnyChangeOptions)
    inst_ceg: InstCEGOptions = field(default_factory=InstCEGOptions)
    dynamicearth: DynamicEarthOptions = field(default_factory=DynamicEarthOptions)
    ucd_scm: UCDSCMOptions = field(default_factory=UCDSCMOptions)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Plain, JSON-able nested dict (tuples become lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def hash(self) -> str:
        """SHA-256 of the canonical JSON of :meth:`to_dict`."""
        return _sha256_json(self.to_dict())

    def products_hash(self) -> str:
        """SHA-256 of the sections that can change a product: all but cluster, storage, series, input.asset.

        The cluster's size, threads, memory limit and retries change where and how fast
        blocks run, never their pixels, so a run resumed on another cluster keeps its blocks.
        ``storage`` says how the inputs are reached and ``input.asset`` which file of a STAC
        Item is read; which inputs those are is in the fingerprint, as are the masks
        ``input.mask_t1`` / ``input.mask_t2`` name and the shift ``input.coregister`` applies.
        ``series`` says how a series reads its pairs, never what a pair holds.
        """
        doc = {k: v for k, v in self.to_dict().items() if k not in ("cluster", "storage", "series")}
        for key in _INPUT_IDENTIFIED_ELSEWHERE:
            doc["input"].pop(key, None)
        return _sha256_json(doc)


#: ``input`` keys left out of :meth:`Config.products_hash`: which file ``asset``, ``mask_t1`` and
#: ``mask_t2`` name is in the fingerprint (its identity), and the co-registration QA's keys
#: change no pixel but through the shift it applies, which the fingerprint holds too.
_INPUT_IDENTIFIED_ELSEWHERE = ("asset", "mask_t1", "mask_t2", "max_shift_px", "coreg_qa", "coreg_band",
                               "coreg_window", "coreg_min_confidence")


def _sha256_json(doc: dict[str, Any]) -> str:
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


_SECTION_TYPES: dict[str, type] = {
    "input": InputConfig,
    "tiling": TilingConfig,
    "model": ModelConfig,
    "output": OutputConfig,
    "cluster": ClusterConfig,
    "storage": StorageConfig,
    "series": SeriesConfig,
    "fit": FitOptions,
    "pca_kmeans": PCAKMeansOptions,
    "irmad": IRMADOptions,
    "dcva": DCVAOptions,
    "amg": AMGOptions,
    "anychange": AnyChangeOptions,
    "inst_ceg": InstCEGOptions,
    "dynamicearth": DynamicEarthOptions,
    "ucd_scm": UCDSCMOptions,
}


def required_checkpoints(cfg: Config) -> tuple[str, ...]:
    """The ``model.*_checkpoint`` keys a run of ``cfg`` loads, options of every section included.

    ``ModelConfig.required_checkpoints`` plus DINOv2's when an option asks for it
    (``anychange.features: dinov2``; the comparator registry says which).
    """
    keys = list(cfg.model.required_checkpoints())
    if cfg.model.spec.uses_dinov2(comparator_options(cfg)):
        keys.append("backbone_checkpoint")
    return tuple(dict.fromkeys(keys))


def comparator_options(cfg: Config) -> ComparatorOptions:
    """The comparator sections of ``cfg`` as one value (what the comparator registry's builders take)."""
    return ComparatorOptions(fit=cfg.fit, pca_kmeans=cfg.pca_kmeans, irmad=cfg.irmad, dcva=cfg.dcva, amg=cfg.amg,
                             anychange=cfg.anychange, inst_ceg=cfg.inst_ceg, dynamicearth=cfg.dynamicearth,
                             ucd_scm=cfg.ucd_scm)


def mask_comparator(cfg: Config) -> MaskComparator:
    """The run's mask-level comparator (a mask-level ``model.comparator``) with its sections' options.

    Raises:
        ConfigError: ``model.comparator`` is no mask-level comparator.
    """
    from s2c_batch.kernels.comparators.registry import create_mask_comparator

    return create_mask_comparator(cfg.model.comparator, comparator_options(cfg))


def check_checkpoints(cfg: Config) -> None:
    """Fail early when a checkpoint a run of ``cfg`` needs is not there (see :func:`required_checkpoints`).

    Raises:
        CheckpointError: naming the key, the path and what it must hold.
    """
    cfg.model.check_checkpoints(required_checkpoints(cfg))


def configs_dir() -> Path:
    """The folder of the packaged YAML configs (``configs/``; see :mod:`s2c_batch.kernels.resources`)."""
    return packaged_configs_dir()


def resolve_config_path(name: str) -> Path:
    """Map ``--config`` to a file: a path, or the name of a packaged config.

    Raises:
        ConfigError: when neither exists; lists the packaged names.
    """
    path = Path(name)
    if path.is_file():
        return path
    packaged = configs_dir() / (name if name.endswith((".yaml", ".yml")) else f"{name}.yaml")
    if packaged.is_file():
        return packaged
    names = sorted(p.stem for p in configs_dir().glob("*.yaml"))
    raise ConfigError(
        f"config {name!r} not found: it is neither a file nor a packaged config; "
        f"packaged configs are {names}"
    )


def load_config(path: str | Path | None = None, overrides: typing.Sequence[str] = ()) -> Config:
    """Load a YAML config, apply ``SECTION.KEY=VALUE`` overrides, validate.

    Args:
        path: a YAML file or a packaged config name; ``None`` = ``default``.
        overrides: strings ``SECTION.KEY=VALUE``; VALUE is parsed as YAML
            (``[1, 2, 3]``, ``0.5``, ``null``).

    Returns:
        The frozen, validated config.

    Raises:
        ConfigError: unreadable file, unknown section or key, wrong type or range.
    """
    raw, source = _read_config(path, overrides)
    return config_from_dict(raw, source=source)


def load_comparator_configs(path: str | Path | None, overrides: typing.Sequence[str],
                            comparators: typing.Sequence[str]) -> dict[str, Config]:
    """One config per comparator run side by side (``compare``, ``eval --comparators``).

    The file and the overrides are read once; each comparator's config is them with
    ``model.comparator`` set to it and the settings that apply to some comparators only
    kept where they apply (:func:`~s2c_batch.kernels.model_config.comparator_settings`),
    and only then validated: ``--set model.standardize=scene`` is checked against the
    classical comparators it applies to, not against the file's own comparator.

    Args:
        path: a YAML file or a packaged config name; ``None`` = ``default``.
        overrides: strings ``SECTION.KEY=VALUE``.
        comparators: ``model.comparator`` names, in the order of the result.

    Returns:
        Comparator name -> its frozen, validated config.

    Raises:
        ConfigError: as :func:`load_config`, for any of the comparators; a setting that
            applies to none of them.
    """
    raw, source = _read_config(path, overrides)
    model = raw.get("model") or {}
    if not isinstance(model, dict):
        raise ConfigError(f"config section 'model' in {source} must be a mapping")
    check_side_by_side(model, comparators)
    return {name: config_from_dict({**raw, "model": comparator_settings(name, model)}, source=source)
            for name in comparators}


def _read_config(path: str | Path | None, overrides: typing.Sequence[str]) -> tuple[dict[str, Any], str]:
    """The sections of a config file with the overrides applied, not yet validated, and the file's name."""
    file = resolve_config_path(str(path) if path is not None else "default")
    try:
        raw = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {str(file)!r} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {str(file)!r} must hold a mapping of sections")
    raw = {k: dict(v or {}) if isinstance(v, dict) or v is None else v for k, v in raw.items()}
    _resolve_relative_paths(raw, file.parent)
    for item in overrides:
        section, key, value = parse_override(item)
        raw.setdefault(section, {})
        if not isinstance(raw[section], dict):
            raise ConfigError(f"config section {section!r} in {str(file)!r} must be a mapping")
        raw[section][key] = value
    return raw, str(file)


def _resolve_relative_paths(raw: dict[str, Any], base: Path) -> None:
    """Checkpoint and mask paths written in a config file are relative to that file's folder.

    (Paths given with ``--set`` stay relative to the working directory.)
    """
    model = raw.get("model")
    if isinstance(model, dict):
        for key, value in model.items():
            if key.endswith("checkpoint") and isinstance(value, str) and value and not Path(value).is_absolute():
                model[key] = str((base / value).resolve())
    section = raw.get("input")
    if isinstance(section, dict):  # a mask file beside the config (a URL or a STAC asset name stays as written)
        for key in ("mask_t1", "mask_t2"):
            value = section.get(key)
            if isinstance(value, str) and value and not Path(value).is_absolute() and (base / value).is_file():
                section[key] = str((base / value).resolve())


def parse_override(item: str) -> tuple[str, str, Any]:
    """Split ``SECTION.KEY=VALUE`` and parse VALUE as YAML.

    Raises:
        ConfigError: when the text has no ``=`` or no ``SECTION.`` part.
    """
    if "=" not in item or "." not in item.split("=", 1)[0]:
        raise ConfigError(
            f"--set expects SECTION.KEY=VALUE (e.g. tiling.block_size=1024), got {item!r}"
        )
    lhs, text = item.split("=", 1)
    section, key = lhs.strip().split(".", 1)
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {item!r}: value is not valid YAML: {exc}") from exc
    return section, key, value


def config_from_dict(raw: dict[str, Any], source: str = "<dict>") -> Config:
    """Build a :class:`Config` from nested plain data, checking every key and type."""
    unknown = sorted(set(raw) - set(_SECTION_TYPES))
    if unknown:
        raise ConfigError(
            f"unknown config section(s) {unknown} in {source}; valid sections are {sorted(_SECTION_TYPES)}"
        )
    sections: dict[str, Any] = {}
    for name, cls in _SECTION_TYPES.items():
        values = raw.get(name) or {}
        if not isinstance(values, dict):
            raise ConfigError(f"config section {name!r} in {source} must be a mapping")
        sections[name] = _build_section(name, cls, values, source)
    return Config(**sections)


def _build_section(name: str, cls: type, values: dict[str, Any], source: str) -> Any:
    hints = typing.get_type_hints(cls)
    valid = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(valid))
    if unknown:
        keys = ", ".join(f"{name}.{k}" for k in unknown)
        raise ConfigError(
            f"unknown config key(s) {keys} in {source}; valid keys of section {name!r} are {valid}"
        )
    kwargs = {k: _convert(f"{name}.{k}", hints[k], v) for k, v in values.items()}
    return cls(**kwargs)


def _convert(key: str, tp: Any, value: Any) -> Any:
    """Convert a YAML value to the annotated type or raise a ConfigError naming ``key``."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        errors = []
        for member in inner:  # the first member the value converts to
            try:
                return _convert(key, member, value)
            except ConfigError as exc:
                errors.append(str(exc).removeprefix(f"{key} must be ").split(", got ")[0])
        raise ConfigError(f"{key} must be {' or '.join(errors)}, got {value!r}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{key} must be one of {list(args)}, got {value!r}")
        return value
    if origin is tuple:
        item_tp = args[0]
        items = value if isinstance(value, (list, tuple)) else [value]
        if isinstance(value, str) and item_tp is str:
            items = [s.strip() for s in value.split(",") if s.strip()]
        return tuple(_convert(key, item_tp, v) for v in items)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key} must be true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key} must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key} must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"{key} must be a string, got {value!r}")
        return str(value)
    raise ConfigError(f"{key}: unsupported config type {tp!r}")  # pragma: no cover
