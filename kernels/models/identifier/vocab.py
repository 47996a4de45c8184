"""Prompt vocabularies: one class per line, commas between synonyms, targets in a comment.

File format (``configs/vocab/*.txt``)::

    # any comment
    # targets: building
    background
    bareland,barren
    building

- Each non-empty line that does not start with ``#`` is one class; its index is
  its position among the class lines (0-based). Synonyms are separated by commas
  and each one is sent to SAM 3 as its own text prompt; a class scores the max
  over its synonyms. The first synonym names the class.
- ``# targets: a, b`` lists the target classes (binary change of targets) by
  their first synonym. Without a targets line every class is a target.
- Index 0 also receives the pixels whose best class score is below ``prob_thd``
  (the background index of SegEarth-OV3).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from s2c_batch.kernels.errors import ConfigError
from s2c_batch.kernels.resources import packaged_configs_dirs

_TARGETS = "targets:"


@dataclass(frozen=True)
class Vocabulary:
    """Classes, their synonyms and the target classes.

    Attributes:
        synonyms: per class, its prompts (the first one names the class).
        targets: indexes of the target classes.
    """

    synonyms: tuple[tuple[str, ...], ...]
    targets: tuple[int, ...]

    @property
    def class_names(self) -> tuple[str, ...]:
        """The first synonym of each class."""
        return tuple(s[0] for s in self.synonyms)

    @property
    def prompts(self) -> tuple[str, ...]:
        """Every synonym, class by class (the order SAM 3 sees them)."""
        return tuple(p for s in self.synonyms for p in s)

    @property
    def prompt_class(self) -> tuple[int, ...]:
        """Class index of each prompt in :attr:`prompts`."""
        return tuple(i for i, s in enumerate(self.synonyms) for _ in s)

    def with_targets(self, names: tuple[str, ...], *, key: str = "model.targets") -> Vocabulary:
        """A copy whose targets are the classes named (by first synonym).

        Raises:
            ConfigError: a name that is no class of the vocabulary.
        """
        index = {n: i for i, n in enumerate(self.class_names)}
        unknown = [n for n in names if n not in index]
        if unknown:
            raise ConfigError(f"{key} names unknown classes {unknown!r}; the classes are {list(self.class_names)!r}")
        return Vocabulary(self.synonyms, tuple(sorted({index[n] for n in names})))


def parse_vocabulary(text: str, *, source: str = "<vocabulary>") -> Vocabulary:
    r"""Parse the text of a vocabulary file (format in the module docstring).

    Example:
        >>> v = parse_vocabulary("# targets: building\nbackground\nbuilding, roof\n")
        >>> v.class_names, v.prompts, v.prompt_class, v.targets
        (('background', 'building'), ('background', 'building', 'roof'), (0, 1, 1), (1,))

    Raises:
        ConfigError: no class, an empty synonym, a duplicate class or an unknown target.
    """
    synonyms: list[tuple[str, ...]] = []
    target_names: tuple[str, ...] | None = None
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            body = line[1:].strip()
            if body.lower().startswith(_TARGETS):
                target_names = tuple(t.strip() for t in body[len(_TARGETS) :].split(",") if t.strip())
            continue
        names = tuple(n.strip() for n in line.split(","))
        if any(not n for n in names):
            raise ConfigError(f"{source}, line {lineno}: empty synonym in {raw!r}; separate synonyms by single commas")
        synonyms.append(names)
    if not synonyms:
        raise ConfigError(f"{source} holds no class lines; write one class per line")
    first = [s[0] for s in synonyms]
    duplicates = sorted({n for n in first if first.count(n) > 1})
    if duplicates:
        raise ConfigError(f"{source}: classes {duplicates!r} appear more than once")
    vocab = Vocabulary(tuple(synonyms), tuple(range(len(synonyms))))
    if target_names is not None:
        vocab = vocab.with_targets(target_names, key=f"{source} '# targets:' line")
    return vocab


def read_vocabulary(path: str | Path) -> Vocabulary:
    """Read and parse a vocabulary file.

    Raises:
        ConfigError: the file is missing or malformed.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read vocabulary file {str(path)!r}: {exc}") from exc
    return parse_vocabulary(text, source=str(path))


def vocab_dirs() -> list[Path]:
    """Folders searched for named vocabularies: ``vocab/`` of each packaged configs folder."""
    return [d / "vocab" for d in packaged_configs_dirs()]


def load_vocabulary(name: str) -> Vocabulary:
    """Read ``model.vocab``: a name in ``configs/vocab`` or a path to a vocabulary file.

    Raises:
        ConfigError: neither a packaged name nor an existing file.
    """
    path = Path(name)
    if path.suffix == ".txt" or len(path.parts) > 1:
        if not path.is_file():
            raise ConfigError(f"model.vocab = {name!r} is not a file; name a packaged vocabulary or a .txt path")
        return read_vocabulary(path)
    for folder in vocab_dirs():
        candidate = folder / f"{name}.txt"
        if candidate.is_file():
            return read_vocabulary(candidate)
    known = sorted({p.stem for d in vocab_dirs() if d.is_dir() for p in d.glob("*.txt")})
    raise ConfigError(f"model.vocab = {name!r} is no packaged vocabulary; choose one of {known} or give a path")
