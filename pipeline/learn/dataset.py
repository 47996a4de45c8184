"""Change-detection datasets on disk: the LEVIR-CD folder layout, listed and read.

A DATASET is a folder of co-registered image pairs and their change labels::

    DATASET/A/<name>.png       t1, RGB (PNG, TIFF or JPEG, uint8)
    DATASET/B/<name>.png       t2
    DATASET/label/<name>.png   change label, one band

The authors' processed SECOND folders (``T1/``, ``T2/``, ``GT_CD/``) are read
the same way. Files are matched by name without suffix (DSIFN pairs ``.jpg``
images with ``.tif`` labels). Optional per-date class maps (semantic change,
class ids as the dataset defines them) sit in ``label1/`` and ``label2/``
(``GT_T1/`` and ``GT_T2/`` in the SECOND layout).

Change labels are read as 0 = unchanged, 1 = changed, 255 = ignored:
a label holding only 0 and 255 is a LEVIR-style mask and 255 means changed
(the authors divide by 255); a label holding 1 is 0/1 with 255 ignored.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from s2c_batch.pipeline.errors import InputError

#: Image suffixes listed in the folders (case-insensitive).
IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".tif", ".tiff", ".jpg", ".jpeg")

#: (t1, t2, change label, class map t1, class map t2) folder names of each accepted layout.
LAYOUTS: dict[str, tuple[str, str, str, str, str]] = {
    "levir": ("A", "B", "label", "label1", "label2"),
    "second": ("T1", "T2", "GT_CD", "GT_T1", "GT_T2"),
}


@dataclass(frozen=True)
class PairFiles:
    """The files of one image pair.

    Attributes:
        name: the shared file name without suffix.
        t1: image of the first date.
        t2: image of the second date.
        label: change label.
        class_t1: class map of t1, or None.
        class_t2: class map of t2, or None.
    """

    name: str
    t1: Path
    t2: Path
    label: Path
    class_t1: Path | None = None
    class_t2: Path | None = None


@dataclass(frozen=True)
class ChangeDataset:
    """A listed dataset folder.

    Attributes:
        root: the folder.
        layout: ``levir`` or ``second``.
        pairs: the pairs, sorted by name.
    """

    root: Path
    layout: str
    pairs: tuple[PairFiles, ...]

    @property
    def semantic(self) -> bool:
        """Whether every pair has per-date class maps."""
        return bool(self.pairs) and all(p.class_t1 is not None for p in self.pairs)

    def __len__(self) -> int:
        return len(self.pairs)


def _listing(folder: Path) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for entry in sorted(folder.iterdir()):
        if entry.is_file() and entry.suffix.lower() in IMAGE_SUFFIXES and not entry.name.startswith("."):
            if entry.stem in files:
                raise InputError(
                    f"{str(folder)!r} holds two images named {entry.stem!r} ({files[entry.stem].name}, "
                    f"{entry.name}); keep one file per name"
                )
            files[entry.stem] = entry
    return files


def _mismatch(root: Path, have: str, lacks: str, names: list[str]) -> InputError:
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    return InputError(
        f"dataset {str(root)!r}: {len(names)} image(s) in {have}/ have no same-named file in {lacks}/ "
        f"({shown}); every pair needs {have}/NAME and {lacks}/NAME (any of {', '.join(IMAGE_SUFFIXES)})"
    )


def open_dataset(root: str | os.PathLike[str]) -> ChangeDataset:
    """List a dataset folder and check that its files pair up.

    Args:
        root: the DATASET folder (``A/``, ``B/``, ``label/`` or ``T1/``, ``T2/``, ``GT_CD/``).

    Returns:
        The pairs, sorted by name.

    Raises:
        InputError: the folder or a sub-folder is missing, it holds no pairs, or
            the names in the sub-folders differ (exit code 3).
    """
    path = Path(root)
    if not path.is_dir():
        raise InputError(f"dataset folder {str(path)!r} does not exist; give a folder with A/, B/ and label/")
    layout = next((k for k, v in LAYOUTS.items() if (path / v[0]).is_dir()), "levir")
    a_dir, b_dir, lab_dir, c1_dir, c2_dir = LAYOUTS[layout]
    for sub in (a_dir, b_dir, lab_dir):
        if not (path / sub).is_dir():
            raise InputError(
                f"dataset {str(path)!r} has no {sub}/ folder; a dataset holds A/ (t1), B/ (t2) and label/ "
                "(change masks) of same-named images (the LEVIR-CD layout)"
            )
    a, b, lab = _listing(path / a_dir), _listing(path / b_dir), _listing(path / lab_dir)
    for have, lacks, x, y in ((a_dir, b_dir, a, b), (b_dir, a_dir, b, a), (a_dir, lab_dir, a, lab),
                              (lab_dir, a_dir, lab, a)):
        missing = sorted(set(x) - set(y))
        if missing:
            raise _mismatch(path, have, lacks, missing)
    if not a:
        raise InputError(f"dataset {str(path)!r}: {a_dir}/ holds no images ({', '.join(IMAGE_SUFFIXES)})")
    c1 = _listing(path / c1_dir) if (path / c1_dir).is_dir() else {}
    c2 = _listing(path / c2_dir) if (path / c2_dir).is_dir() else {}
    if c1 or c2:
        for have, lacks, x, y in ((a_dir, c1_dir, a, c1), (a_dir, c2_dir, a, c2)):
            missing = sorted(set(x) - set(y))
            if missing:
                raise _mismatch(path, have, lacks, missing)
    pairs = tuple(
        PairFiles(name, a[name], b[name], lab[name], c1.get(name), c2.get(name)) for name in sorted(a)
    )
    return ChangeDataset(path, layout, pairs)


def _read(path: Path, role: str) -> np.ndarray:
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning, RasterioIOError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path) as src:
                data = src.read()
    except RasterioIOError as exc:
        raise InputError(f"{role} {str(path)!r} is not a readable image: {exc}") from exc
    if data.dtype != np.uint8:
        raise InputError(
            f"{role} {str(path)!r} holds {data.dtype} pixels; datasets hold 8-bit images (PNG, TIFF, JPEG) - "
            "convert it to uint8"
        )
    return data


def write_png(path: str | os.PathLike[str], data: np.ndarray) -> None:
    """Write uint8 ``[C, H, W]`` or ``[H, W]`` as a PNG (the dataset files :func:`read_image` reads)."""
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning

    data = data if data.ndim == 3 else data[None]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path, "w", driver="PNG", width=data.shape[2], height=data.shape[1],
                           count=data.shape[0], dtype="uint8") as dst:
            dst.write(data)


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """An RGB image of a pair.

    Args:
        path: PNG, TIFF or JPEG with 3 (or 4, alpha dropped) uint8 bands.

    Returns:
        uint8 ``[3, H, W]``.

    Raises:
        InputError: unreadable, not uint8, or not RGB.
    """
    data = _read(Path(path), "image")
    if data.shape[0] not in (3, 4):
        raise InputError(f"image {str(path)!r} has {data.shape[0]} band(s); pairs are RGB images with 3 bands")
    return np.ascontiguousarray(data[:3])


def read_label(path: str | os.PathLike[str]) -> np.ndarray:
    """A change label as 0 unchanged, 1 changed, 255 ignored.

    Args:
        path: one-band (or grey RGB, band 1 used) uint8 mask: 0/255 (LEVIR) or 0/1 with 255 ignored.

    Returns:
        uint8 ``[H, W]``.

    Raises:
        InputError: unreadable, or values other than 0, 1 and 255.
    """
    data = _read(Path(path), "label")[0]
    values = np.unique(data)
    present = {int(v) for v in values}
    if not present <= {0, 1, 255}:
        bad = sorted(present - {0, 1, 255})[:5]
        raise InputError(
            f"label {str(path)!r} holds values {bad}; change labels are 0/255 masks (LEVIR-CD) or 0/1 with "
            "255 = ignore"
        )
    if 1 not in present:  # 0/255 mask: 255 is the changed class
        return (data == 255).astype(np.uint8)
    return data.copy()


def read_class_map(path: str | os.PathLike[str]) -> np.ndarray:
    """A per-date class map (class ids as the dataset defines them).

    Returns:
        uint8 ``[H, W]``.
    """
    return np.ascontiguousarray(_read(Path(path), "class map")[0])


def read_pair(pair: PairFiles) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Both images and the label of a pair, checked to share one size.

    Returns:
        ``(t1 [3, H, W], t2 [3, H, W], label [H, W])``, uint8.

    Raises:
        InputError: the three files differ in size.
    """
    t1, t2, label = read_image(pair.t1), read_image(pair.t2), read_label(pair.label)
    if not (t1.shape[1:] == t2.shape[1:] == label.shape):
        raise InputError(
            f"pair {pair.name!r}: {pair.t1.name} is {t1.shape[1]}x{t1.shape[2]}, {pair.t2.name} "
            f"{t2.shape[1]}x{t2.shape[2]} and label {pair.label.name} {label.shape[0]}x{label.shape[1]}; "
            "the three files of a pair must have the same size"
        )
    return t1, t2, label
