"""The files the demo's page shows (renders, clips, curves), written whole before the page can fetch them.

Gradio caches a returned array by writing it to a path named after its bytes, and writes that path again, in place,
every time the same image is returned: a page that is fetching the previous (identical) image reads half a file
("image file is truncated"). The demo therefore returns file paths. Each file here is written under a temporary name
and renamed into place under a name of its content, so a reader sees the whole file or none; Gradio copies such paths
into its cache the same way. The folder is the process's own, holds the newest `keep` files and is removed at exit.
"""

from __future__ import annotations

import atexit
import hashlib
import io
import os
import shutil
import tempfile
import threading
from pathlib import Path

import numpy as np


class PageFiles:
    def __init__(self, keep: int = 256):
        self.folder = Path(tempfile.mkdtemp(prefix="pain3d-demo-"))
        self.keep = keep
        self._lock = threading.Lock()
        atexit.register(shutil.rmtree, self.folder, True)

    def write(self, data: bytes, suffix: str) -> str:
        """`data` as `<sha256><suffix>` in the folder (written once, atomically); its path."""
        path = self.folder / f"{hashlib.sha256(data).hexdigest()[:40]}{suffix}"
        with self._lock:
            if path.exists():
                os.utime(path)  # the newest again, so pruning keeps it
                return str(path)
            descriptor, staging = tempfile.mkstemp(dir=self.folder, prefix=".", suffix=suffix)
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(data)
            os.replace(staging, path)
            self._prune()
        return str(path)

    def image(self, picture) -> str | None:
        """An RGB array or PIL image as a PNG file (None stays None: an empty image on the page)."""
        if picture is None:
            return None
        from PIL import Image

        if not isinstance(picture, Image.Image):
            picture = Image.fromarray(np.asarray(picture, dtype=np.uint8))
        buffer = io.BytesIO()
        picture.save(buffer, format="PNG")
        return self.write(buffer.getvalue(), ".png")

    def _prune(self) -> None:
        files = [path for path in self.folder.iterdir() if not path.name.startswith(".")]  # not a file being written
        files.sort(key=lambda path: path.stat().st_mtime)
        for stale in files[: max(len(files) - self.keep, 0)]:
            stale.unlink(missing_ok=True)
