"""``RUNS.yaml``: the scene pairs of a batch, read and checked before anything runs.

Format::

    defaults:                  # optional; applies to every run
      config: default          # a config file or a packaged config name
      out: s3://bucket/night   # optional; where relative run outs go (default: RUNS.yaml's folder)
      set:                     # overrides, as a mapping or a list of SECTION.KEY=VALUE
        tiling.block_size: 4096
    runs:
      - name: 31UFS            # optional; default = the out folder's (or prefix's) name; unique
        t1: scenes/2024/31UFS.tif
        t2: scenes/2025/31UFS.tif
        out: products/31UFS    # a folder, or an s3:// or gs://bucket/prefix
        config: configs/site.yaml   # optional; replaces defaults.config
        set: [model.threshold=0.4]  # optional; applied after defaults.set
        bbox: [600000, 5090000, 610000, 5100000]   # optional, in t1's CRS
        overwrite: false       # optional; replace an output made with other inputs/config
        mask_t1: masks/2024/31UFS_SCL.tif   # optional: input.mask_t1 of this run
        mask_t2: SCL           # optional: input.mask_t2 (here an asset of t2's STAC Item)
    series:                    # optional; N acquisitions of one place (s2c-batch series)
      - name: 31UFS-series     # optional; default = the out folder's (or prefix's) name; unique
        dates: scenes/31UFS/*.tif   # a glob (local files), or a list of paths, URLs or STAC Items
        out: products/31UFS-series
        against: previous      # optional; previous or first (series.against)
        persistence: 2         # optional (series.persistence)
        config: ...            # optional, as a run's; so are set and overwrite

A run list may hold ``runs``, ``series`` or both.

Relative paths (``t1``, ``t2``, ``out``, a ``config`` that is a file, a ``mask_t1`` or
``mask_t2`` that names a file there) are taken
relative to the folder of RUNS.yaml, so the file works from any working
directory; a relative ``out`` is taken under ``defaults.out`` when it is given (a
folder, or an ``s3://`` or ``gs://`` prefix under which ``out: products/31UFS`` is the key prefix
``products/31UFS``). ``t1`` and ``t2`` may also be ``s3://``, ``gs://`` or ``http(s)://``
URLs or GDAL ``/vsi...`` paths, kept as written (the ``storage`` section says how to reach
them); ``out`` may be an ``s3://`` or ``gs://bucket/prefix`` (the run's ``storage`` section says how to
reach it). Every problem found (unknown key, missing field, duplicate name or output, bad
config, an ``out`` URL of another scheme) is reported at once as a :class:`ConfigError`
(exit 2): a batch with a broken run list starts nothing.
"""

from __future__ import annotations

import glob
import json
import os
import posixpath
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import yaml

from s2c_batch.pipeline.config import Config, load_config, parse_override
from s2c_batch.pipeline.errors import ConfigError, OutputError
from s2c_batch.pipeline.inputs.source import Source
from s2c_batch.pipeline.output.locate import open_location
from s2c_batch.pipeline.output.location import Location
from s2c_batch.pipeline.series.runner import SeriesSpec

RUN_KEYS = ("name", "t1", "t2", "out", "config", "set", "bbox", "overwrite", "mask_t1", "mask_t2")
SERIES_KEYS = ("name", "dates", "out", "config", "set", "against", "persistence", "overwrite")
DEFAULT_KEYS = ("config", "set", "out")
TOP_KEYS = ("defaults", "runs", "series")


@dataclass(frozen=True)
class RunSpec:
    """One run of a batch, with its config resolved.

    Attributes:
        name: unique name (used in the summary and logs).
        t1: earlier scene: a local path, or a URL / ``/vsi...`` path as written.
        t2: later scene.
        out: output folder, or an object-store prefix (``s3://`` or ``gs://bucket/prefix``).
        cfg: the run's resolved config.
        config: the config file or name it came from (for the summary).
        overrides: the ``SECTION.KEY=VALUE`` overrides applied, in order.
        bbox: AOI in t1's CRS, or ``None``.
        overwrite: replace an output whose fingerprint differs.
    """

    name: str
    t1: Source
    t2: Source
    out: Location
    cfg: Config
    config: str
    overrides: tuple[str, ...] = ()
    bbox: tuple[float, float, float, float] | None = None
    overwrite: bool = False


@dataclass(frozen=True)
class RunsFile:
    """A parsed ``RUNS.yaml``.

    Attributes:
        path: the file.
        runs: its runs, in file order.
        defaults: the config every run starts from (sizes the LocalCluster).
        series: its series, in file order.
    """

    path: Path
    runs: tuple[RunSpec, ...]
    defaults: Config = field(default_factory=lambda: load_config("default"))
    series: tuple[SeriesSpec, ...] = ()


def load_runs_file(path: str | os.PathLike[str]) -> RunsFile:
    """Read and validate a RUNS.yaml.

    Raises:
        ConfigError: unreadable file, unknown keys, missing fields, duplicate
            names or outputs, bad configs or overrides; every problem is listed.
    """
    file = Path(path)
    try:
        raw = yaml.safe_load(file.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read the runs file {str(file)!r}: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"runs file {str(file)!r} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict) or not any(isinstance(raw.get(k), list) and raw[k] for k in ("runs", "series")):
        raise ConfigError(
            f"runs file {str(file)!r} must be a mapping with a non-empty list under 'runs:' "
            "(each run has t1, t2 and out) or 'series:' (each series has dates and out)"
        )
    problems: list[str] = []
    unknown = sorted(set(raw) - set(TOP_KEYS))
    if unknown:
        problems.append(f"unknown top-level key(s) {unknown}; valid keys are {list(TOP_KEYS)}")
    base = file.resolve().parent
    defaults = raw.get("defaults") or {}
    if not isinstance(defaults, dict):
        problems.append("'defaults' must be a mapping with optional 'config' and 'set'")
        defaults = {}
    bad = sorted(set(defaults) - set(DEFAULT_KEYS))
    if bad:
        problems.append(f"unknown key(s) {bad} under 'defaults'; valid keys are {list(DEFAULT_KEYS)}")
    default_config = defaults.get("config")
    default_set = _overrides(defaults.get("set"), "defaults.set", problems)
    default_cfg = _config(base, default_config, default_set, "defaults", problems)
    out_base = _out_base(base, defaults.get("out"), problems)
    runs: list[RunSpec] = []
    for key in ("runs", "series"):
        if key in raw and not isinstance(raw[key], list):
            problems.append(f"'{key}' must be a list, got {raw[key]!r}")
    for i, entry in enumerate(raw.get("runs") or [] if isinstance(raw.get("runs"), list) else []):
        spec = _run(base, out_base, i, entry, default_config, default_set, problems)
        if spec is not None:
            runs.append(spec)
    series: list[SeriesSpec] = []
    for i, entry in enumerate(raw.get("series") or [] if isinstance(raw.get("series"), list) else []):
        one = _series(base, out_base, i, entry, default_config, default_set, problems)
        if one is not None:
            series.append(one)
    _check_unique([*runs, *series], problems)
    if problems:
        lines = "\n  - ".join(problems)
        raise ConfigError(f"runs file {str(file)!r} has {len(problems)} problem(s):\n  - {lines}")
    return RunsFile(path=file, runs=tuple(runs), defaults=default_cfg or load_config(None), series=tuple(series))


def _run(base: Path, out_base: Path | str, i: int, entry: Any, default_config: Any, default_set: list[str],
         problems: list[str]) -> RunSpec | None:
    where = f"runs[{i}]"
    if not isinstance(entry, dict):
        problems.append(f"{where} must be a mapping with t1, t2 and out, got {entry!r}")
        return None
    unknown = sorted(set(entry) - set(RUN_KEYS))
    if unknown:
        problems.append(f"{where}: unknown key(s) {unknown}; valid keys are {list(RUN_KEYS)}")
    missing = [k for k in ("t1", "t2", "out") if not isinstance(entry.get(k), str) or not entry[k].strip()]
    if missing:
        problems.append(f"{where}: missing or empty {missing}; give a path for each")
        return None
    target = _out_target(out_base, entry["out"], where, problems)
    name = str(entry.get("name") or (_last_name(target) if target is not None else "") or f"run{i}")
    where = f"{where} ({name})"
    config = entry.get("config", default_config)
    overrides = default_set + _overrides(entry.get("set"), f"{where}.set", problems)
    for key in ("mask_t1", "mask_t2"):
        value = entry.get(key)
        if value is None:
            continue
        if not isinstance(value, str) or not value.strip():
            problems.append(f"{where}: {key} must be a mask raster's path or URL, or an asset name of the "
                            f"scene's STAC Item, got {value!r}")
            continue
        overrides.append(f"input.{key}={json.dumps(_mask(base, value))}")
    cfg = _config(base, config, overrides, where, problems)
    bbox = _bbox(entry.get("bbox"), where, problems)
    overwrite = entry.get("overwrite", False)
    if not isinstance(overwrite, bool):
        problems.append(f"{where}: overwrite must be true or false, got {overwrite!r}")
        overwrite = False
    if cfg is None or target is None:
        return None
    try:  # the URL's scheme and bucket; its storage section as the runner resolves it
        out = open_location(target, cfg.storage)
    except (OutputError, ConfigError) as exc:
        problems.append(f"{where}: {exc}")
        return None
    return RunSpec(name=name, t1=_scene(base, entry["t1"]), t2=_scene(base, entry["t2"]), out=out,
                   cfg=cfg, config=str(config or "default"), overrides=tuple(overrides), bbox=bbox,
                   overwrite=overwrite)


def _series(base: Path, out_base: Path | str, i: int, entry: Any, default_config: Any, default_set: list[str],
            problems: list[str]) -> SeriesSpec | None:
    where = f"series[{i}]"
    if not isinstance(entry, dict):
        problems.append(f"{where} must be a mapping with dates and out, got {entry!r}")
        return None
    unknown = sorted(set(entry) - set(SERIES_KEYS))
    if unknown:
        problems.append(f"{where}: unknown key(s) {unknown}; valid keys are {list(SERIES_KEYS)}")
    if not isinstance(entry.get("out"), str) or not entry["out"].strip():
        problems.append(f"{where}: missing or empty 'out'; give the series' folder")
        return None
    target = _out_target(out_base, entry["out"], where, problems)
    name = str(entry.get("name") or (_last_name(target) if target is not None else "") or f"series{i}")
    where = f"{where} ({name})"
    dates = _dates(base, entry.get("dates"), where, problems)
    extra = []
    if "against" in entry:
        extra.append(f"series.against={json.dumps(entry['against'])}")
    if "persistence" in entry:
        extra.append(f"series.persistence={json.dumps(entry['persistence'])}")
    config = entry.get("config", default_config)
    overrides = [*default_set, *_overrides(entry.get("set"), f"{where}.set", problems), *extra]
    cfg = _config(base, config, overrides, where, problems)
    overwrite = entry.get("overwrite", False)
    if not isinstance(overwrite, bool):
        problems.append(f"{where}: overwrite must be true or false, got {overwrite!r}")
        overwrite = False
    if cfg is None or target is None or dates is None:
        return None
    try:
        out = open_location(target, cfg.storage)
    except (OutputError, ConfigError) as exc:
        problems.append(f"{where}: {exc}")
        return None
    return SeriesSpec(name=name, dates=dates, out=out, cfg=cfg, overwrite=overwrite)


def _dates(base: Path, value: Any, where: str, problems: list[str]) -> tuple[Source, ...] | None:
    """A series' ``dates``: a list of scenes (as a run's ``t1``), or a glob of local files relative to RUNS.yaml."""
    if isinstance(value, str) and value.strip():
        pattern = _path(base, value)
        found = sorted(glob.glob(str(pattern)))
        if not found:
            problems.append(f"{where}: dates {value!r} matches no file (looked for {str(pattern)!r})")
            return None
        return tuple(Source.parse(f) for f in found)
    if isinstance(value, list) and value and all(isinstance(v, str) and v.strip() for v in value):
        return tuple(_scene(base, v) for v in value)
    problems.append(f"{where}: dates must be a glob of files (scenes/31UFS/*.tif) or a list of scenes, got {value!r}")
    return None


def _scene(base: Path, text: str) -> Source:
    """A scene: a URL or ``/vsi...`` path as written, else a path relative to RUNS.yaml's folder."""
    source = Source.parse(text.strip())
    return source if source.remote else Source.parse(_path(base, text))


def _mask(base: Path, text: str) -> str:
    """A run's mask: a URL as written, a file relative to RUNS.yaml's folder, else as written (an asset name)."""
    source = Source.parse(text.strip())
    if source.is_url:
        return source.text
    path = _path(base, text)
    return str(path) if path.exists() or "/" in text else source.text


def _out_base(base: Path, value: Any, problems: list[str]) -> Path | str:
    """``defaults.out``: a folder (relative to RUNS.yaml's) or a URL; RUNS.yaml's folder when absent."""
    if value is None:
        return base
    if not isinstance(value, str) or not value.strip():
        problems.append(f"defaults.out must be a folder or an s3:// or gs://bucket/prefix, got {value!r}")
        return base
    return value.strip().rstrip("/") if Source.parse(value.strip()).is_url else _path(base, value)


def _out_target(out_base: Path | str, text: str, where: str, problems: list[str]) -> Path | str | None:
    """A run's ``out``: a URL as written, an absolute folder, or ``text`` under ``defaults.out``.

    Under an object-store base, ``text`` is a key prefix joined with ``/`` (``a/./b`` -> ``a/b``); one
    that climbs above the base (``..``) is a problem (``None``).
    """
    text = text.strip()
    if Source.parse(text).is_url:  # an output URL of any scheme: open_location accepts or refuses it
        return text.rstrip("/")
    path = Path(os.path.expanduser(text))
    if path.is_absolute():
        return path
    if isinstance(out_base, Path):
        return out_base / path
    key = posixpath.normpath(text.rstrip("/"))
    if key == "." or key == ".." or key.startswith("../"):
        problems.append(f"{where}: out {text!r} names no prefix below defaults.out {out_base!r}; give a relative "
                        "path under it (e.g. products/31UFS), an absolute folder or a URL")
        return None
    return f"{out_base}/{key}"


def _last_name(target: Path | str) -> str:
    """The folder's name, or the last part of a URL's key (its bucket when it has none)."""
    if isinstance(target, Path):
        return target.name
    parts = urlsplit(target)
    return PurePosixPath(parts.path).name or parts.netloc


def _path(base: Path, text: str) -> Path:
    p = Path(os.path.expanduser(text.strip()))
    return p if p.is_absolute() else base / p


def _overrides(value: Any, where: str, problems: list[str]) -> list[str]:
    """``set:`` as a mapping ``{section.key: value}`` or a list of ``SECTION.KEY=VALUE``."""
    if value is None:
        return []
    if isinstance(value, dict):
        items = [f"{k}={json.dumps(v)}" for k, v in value.items()]
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        items = list(value)
    else:
        problems.append(f"{where} must be a mapping of SECTION.KEY: VALUE or a list of "
                        f"'SECTION.KEY=VALUE' strings, got {value!r}")
        return []
    good = []
    for item in items:
        try:
            parse_override(item)
            good.append(item)
        except ConfigError as exc:
            problems.append(f"{where}: {exc}")
    return good


def _config(base: Path, config: Any, overrides: Sequence[str], where: str,
            problems: list[str]) -> Config | None:
    if config is not None and not isinstance(config, str):
        problems.append(f"{where}: config must be a file path or a packaged config name, got {config!r}")
        return None
    name = config
    if isinstance(config, str) and (base / config).is_file():
        name = str(base / config)
    try:
        return load_config(name, overrides)
    except ConfigError as exc:
        problems.append(f"{where}: {exc}")
        return None


def _bbox(value: Any, where: str, problems: list[str]) -> tuple[float, float, float, float] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = value.split(",")
    try:
        parts = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        parts = ()
    if len(parts) != 4 or not (parts[0] < parts[2] and parts[1] < parts[3]):
        problems.append(f"{where}: bbox must be [minx, miny, maxx, maxy] in t1's CRS with min < max, "
                        f"got {value!r}")
        return None
    return parts


def _check_unique(runs: Sequence[RunSpec | SeriesSpec], problems: list[str]) -> None:
    for label, key in (("name", lambda r: r.name), ("out", _out_key)):
        seen: dict[str, int] = {}
        for r in runs:
            k = key(r)
            seen[k] = seen.get(k, 0) + 1
        dup = sorted(k for k, n in seen.items() if n > 1)
        if dup:
            problems.append(f"runs or series share the same {label}: {dup}; each needs its own {label}")


def _out_key(run: RunSpec | SeriesSpec) -> str:
    """What two runs must not share: the prefix's URL, or the resolved folder."""
    return run.out.resolve().url
