"""Where the face model comes from: an explicit path, `PAIN3D_FACE_MODEL`, the cache, or a download.

Sources may be a `.tar.xz` / `.tar.gz` / `.zip` archive of ICT-FaceKit (or of its `FaceXModel/` folder), an unpacked
folder holding `FaceXModel/` (or being it), or an already converted `.npz`. Every source is converted once into
`$PAIN3D_CACHE` (default `~/.cache/pain3d`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tarfile
import tempfile
import urllib.request
import zipfile
from pathlib import Path

from .model import NEUTRAL_OBJ, FaceModel, FaceModelError, convert_face_model

logger = logging.getLogger(__name__)

ENV_SOURCE = "PAIN3D_FACE_MODEL"
ENV_CACHE = "PAIN3D_CACHE"
DEFAULT_CACHE_NAME = "ict-facekit-light.npz"
# A fixed commit, so the download cannot change under us; its FaceXModel/ files are pinned by FACEX_MODEL_SHA256.
PUBLIC_COMMIT = "da5f95a607f5e6b37755b38d3385d7f2853732e5"
PUBLIC_ARCHIVE_URL = f"https://github.com/ICT-VGL/ICT-FaceKit/archive/{PUBLIC_COMMIT}.zip"
# sha256 of the FaceXModel/ listing (`facex_digest`): the 160 files of that commit (git blob ids checked equal to the
# ICT-FaceKit repository at PUBLIC_COMMIT). The files, not the zip: GitHub builds the zip on request, and its bytes
# are not promised to stay the same.
FACEX_MODEL_SHA256 = "26595cfc96f5516713db635db4d3a120f1d60170301a18f8f2627fa33ee01ec0"

HOW_TO_PROVIDE = (
    "Provide the ICT-FaceKit Light face model (MIT, USC ICT): pass --face-model PATH or set "
    f"{ENV_SOURCE}=PATH, where PATH is the ICT-FaceKit archive (.zip/.tar.xz), its unpacked folder or its "
    "FaceXModel/ folder; or run `pain3d assets` on a machine with internet to download it "
    "(github.com/ICT-VGL/ICT-FaceKit)."
)


def cache_dir() -> Path:
    folder = Path(os.environ.get(ENV_CACHE) or Path.home() / ".cache" / "pain3d")
    if folder.exists() and not folder.is_dir():
        raise FaceModelError(
            f"the face model cache {folder} is a file, not a folder: set {ENV_CACHE} to a folder (or unset it to use "
            "~/.cache/pain3d)"
        )
    return folder


def facex_digest(folder: str | Path) -> str:
    """sha256 over the sorted `sha256  name` lines of every file in a FaceXModel/ folder."""
    lines = []
    for path in sorted(Path(folder).iterdir()):
        if path.is_file():
            lines.append(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {path.name}\n")
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def _cache_file_for(source: Path) -> Path:
    """A cache name tied to the source file/folder identity, so a different source never reuses a stale cache."""
    stat = source.stat()
    key = hashlib.sha256(f"{source.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    return cache_dir() / f"ict-facekit-light-{key}.npz"


def _find_facex_folder(root: Path) -> Path:
    if (root / NEUTRAL_OBJ).is_file():
        return root
    for candidate in sorted(root.rglob(NEUTRAL_OBJ)):
        return candidate.parent
    raise FaceModelError(f"no FaceXModel/{NEUTRAL_OBJ} found under {root}. {HOW_TO_PROVIDE}")


def _unpack(archive: Path, into: Path) -> Path:
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as handle:
                members = [m for m in handle.namelist() if "FaceXModel/" in m]
                handle.extractall(into, members=members or None)
        else:
            with tarfile.open(archive) as handle:
                handle.extractall(into, filter="data")
    except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError) as error:
        raise FaceModelError(f"{archive} is not a readable archive ({error}). {HOW_TO_PROVIDE}") from None
    return _find_facex_folder(into)


def prepare_face_model(source: str | Path, force: bool = False, progress: bool = True) -> Path:
    """Convert `source` (archive, folder or .npz) into the cache if needed; return the cache file."""
    source = Path(source).expanduser()
    if not source.exists():
        raise FaceModelError(f"face model source {source} does not exist. {HOW_TO_PROVIDE}")
    if source.suffix == ".npz":
        return source
    target = _cache_file_for(source)
    if target.is_file() and not force:
        return target
    logger.info("converting face model from %s", source)
    if source.is_dir():
        return convert_face_model(_find_facex_folder(source), target, progress=progress)
    with tempfile.TemporaryDirectory(prefix="pain3d-facemodel-") as tmp:
        return convert_face_model(_unpack(source, Path(tmp)), target, progress=progress)


def download_face_model(progress: bool = True) -> Path:
    """Download the public ICT-FaceKit archive (a pinned commit) into the cache, check its FaceXModel/ files against
    FACEX_MODEL_SHA256 and convert them."""
    if os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("PAIN3D_OFFLINE") == "1":
        raise FaceModelError(f"offline mode is set, so the face model cannot be downloaded. {HOW_TO_PROVIDE}")
    cache_dir().mkdir(parents=True, exist_ok=True)
    archive = cache_dir() / "ICT-FaceKit-master.zip"
    try:
        logger.info("downloading %s", PUBLIC_ARCHIVE_URL)
        with urllib.request.urlopen(PUBLIC_ARCHIVE_URL, timeout=30) as response, open(archive, "wb") as out:
            shutil.copyfileobj(response, out)
    except OSError as error:
        archive.unlink(missing_ok=True)
        raise FaceModelError(f"downloading the face model failed ({error}). {HOW_TO_PROVIDE}") from None
    try:
        with tempfile.TemporaryDirectory(prefix="pain3d-facemodel-") as tmp:
            folder = _unpack(archive, Path(tmp))
            digest = facex_digest(folder)
            if digest != FACEX_MODEL_SHA256:
                raise FaceModelError(
                    f"the downloaded face model from {PUBLIC_ARCHIVE_URL} is not the pinned one (sha256 of its "
                    f"FaceXModel/ files {digest[:16]}..., expected {FACEX_MODEL_SHA256[:16]}...); it was not used. "
                    f"{HOW_TO_PROVIDE}"
                )
            final = convert_face_model(folder, cache_dir() / DEFAULT_CACHE_NAME, progress=progress)
    finally:
        archive.unlink(missing_ok=True)
    return final


def cached_face_model() -> Path | None:
    """The converted face model in the cache: the downloaded one, else the newest conversion of a local source
    (`pain3d assets --face-model PATH` and `generate` store `ict-facekit-light-<hash>.npz`); None if there is none."""
    downloaded = cache_dir() / DEFAULT_CACHE_NAME
    if downloaded.is_file():
        return downloaded
    converted = sorted(cache_dir().glob("ict-facekit-light-*.npz"), key=lambda path: path.stat().st_mtime)
    return converted[-1] if converted else None


def face_model_status() -> str:
    """Which face model file a command would use now, and why (for `pain3d info`); converts nothing."""
    if os.environ.get(ENV_SOURCE):
        source = Path(os.environ[ENV_SOURCE]).expanduser()
        if not source.exists():
            return f"${ENV_SOURCE}={source} does not exist"
        target = source if source.suffix == ".npz" else _cache_file_for(source)
        state = "converted" if target.is_file() else "converted on first use"
        return f"{target} ({state}, from ${ENV_SOURCE}={source})"
    cached = cached_face_model()
    if cached is not None:
        return f"{cached} (from the cache)"
    return f"none yet: {HOW_TO_PROVIDE}"


def resolve_face_model(source: str | Path | None = None, download: bool = True, progress: bool = True) -> Path:
    """The converted face model file, from (in order) `source`, $PAIN3D_FACE_MODEL, the cache, a download."""
    if source is not None:
        return prepare_face_model(source, progress=progress)
    if os.environ.get(ENV_SOURCE):
        return prepare_face_model(os.environ[ENV_SOURCE], progress=progress)
    cached = cached_face_model()
    if cached is not None:
        return cached
    if download:
        return download_face_model(progress=progress)
    raise FaceModelError(f"no face model found in {cache_dir()}. {HOW_TO_PROVIDE}")


def load_face_model(source: str | Path | None = None, download: bool = True, progress: bool = True) -> FaceModel:
    """Find the model (see `resolve_face_model`: `source`, $PAIN3D_FACE_MODEL, the cache, then a download when
    `download`), convert it once if needed and load it."""
    return FaceModel.load(resolve_face_model(source, download=download, progress=progress))
