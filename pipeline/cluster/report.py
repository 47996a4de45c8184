"""Dask's performance report of a computation, saved to an HTML file (``--report``).

The report is rendered by the scheduler, with bokeh. The path is checked before any
work starts; a report that cannot be rendered at the end (bokeh missing where the
scheduler runs) costs a warning, never the run's products.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from s2c_batch.pipeline.errors import OutputError

log = logging.getLogger(__name__)


def check_report_path(path: str | os.PathLike[str] | None) -> None:
    """Fail early when the report could not be saved at ``path``.

    Raises:
        OutputError: the path is a folder, or its folder does not exist or is not writable (exit 4).
    """
    if path is None:
        return
    target = Path(path)
    folder = target.parent  # Path("report.html").parent is Path(".")
    if target.is_dir():
        raise OutputError(f"--report {str(path)!r} is a folder; give a file name, e.g. report.html")
    if not folder.is_dir():
        raise OutputError(f"--report {str(path)!r}: the folder {str(folder)!r} does not exist; create it first")
    if not os.access(folder, os.W_OK):
        raise OutputError(f"--report {str(path)!r}: the folder {str(folder)!r} is not writable")


@contextlib.contextmanager
def performance_report_to(path: str | os.PathLike[str] | None) -> Iterator[None]:
    """Save Dask's performance report of the enclosed computation to ``path`` (nothing for ``None``).

    Uses the current client. An error of the enclosed code propagates as it is. When
    the code succeeded but the report cannot be made, a warning names the file and the
    cause, and the code's results stand.
    """
    if path is None:
        yield
        return
    from distributed import performance_report

    finished = False
    try:
        with performance_report(filename=str(path)):
            yield
            finished = True
    except Exception as exc:
        if not finished:
            raise
        log.warning("could not save the performance report %s: %s: %s (the scheduler renders it with bokeh; "
                    "install bokeh where the scheduler runs)", path, type(exc).__name__, exc)
