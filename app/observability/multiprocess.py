"""The metrics directory of ``cellar serve --workers N`` (prometheus-client's multiprocess mode).

The supervising process (``cellar serve``) prepares it before uvicorn starts
the workers, which inherit ``PROMETHEUS_MULTIPROC_DIR`` and write their
values there; a scrape answered by any worker sums them all.  The directory
is emptied at every start, as prometheus-client requires (files of an
earlier run would be added to this one's).  An operator's
``PROMETHEUS_MULTIPROC_DIR`` is used (and emptied) as is; without one, a
group of several workers gets a private temporary directory, removed at the
end; a single worker needs none.  This module does not import
prometheus-client: the variable must be set before anything does.
"""

from __future__ import annotations

import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator, MutableMapping

VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


@contextmanager
def metrics_directory(workers: int, environ: MutableMapping[str, str]) -> Iterator[Path | None]:
    configured = environ.get(VARIABLE, "").strip()
    if configured:
        directory = Path(configured)
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):
            stale.unlink()
        yield directory
        return
    if workers <= 1:
        yield None
        return
    directory = Path(tempfile.mkdtemp(prefix="cellar-metrics-"))
    environ[VARIABLE] = str(directory)
    try:
        yield directory
    finally:
        environ.pop(VARIABLE, None)
        shutil.rmtree(directory, ignore_errors=True)
