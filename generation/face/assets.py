"""Where the face model comes from, in this order: an explicit path (`--face-model`), `PAIN3D_FACE_MODEL`, the cache,
the model packaged with pain3d, a download.

Sources may be a `.tar.xz` / `.tar.gz` / `.zip` archive of ICT-FaceKit (or of its `FaceXModel/` folder), an unpacked
folder holding `FaceXModel/` (or being it), or an already converted `.npz`. Every source but a `.npz` is converted
once into `$PAIN3D_CACHE` (default `~/.cache/pain3d`). The packaged model (`ict_facekit_light/` beside this module,
with ICT's MIT LICENSE) is the pinned ICT-FaceKit Light converted and cut to the expression shapes the AU table
drives (`export_packaged_face_model`; how to make it again: `ict_facekit_light/README.md`), so a plain install works
offline with no path to set. The download stays for other ICT versions (`pain3d assets --force`).
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

import numpy as np

from ..facs import ACTION_UNITS
from .model import NEUTRAL_OBJ, FaceModel, FaceModelError, convert_face_model, read_face_model_arrays
from .model import save_face_model_arrays

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
# The converted model shipped as package data (made by `export_packaged_face_model` from the pinned files).
PACKAGED_FACE_MODEL = Path(__file__).with_name("ict_facekit_light") / "ict-facekit-light.npz"

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


def _lookup(source: str | Path | None = None) -> tuple[str, Path | None, Path | None]:
    """The lookup order, in one place: (where the model comes from in words, a source still to be converted or None,
    the converted file or None). Both None: nothing is here, the model has to be downloaded."""
    if source is not None:
        return f"from --face-model {source}", Path(source).expanduser(), None
    if os.environ.get(ENV_SOURCE):
        return f"from ${ENV_SOURCE}={os.environ[ENV_SOURCE]}", Path(os.environ[ENV_SOURCE]).expanduser(), None
    cached = cached_face_model()
    if cached is not None:
        return "from the cache", None, cached
    if PACKAGED_FACE_MODEL.is_file():
        return "packaged with pain3d", None, PACKAGED_FACE_MODEL
    return "to be downloaded", None, None


def face_model_status() -> str:
    """Which face model file a command without --face-model would use, where it comes from, its sha256 and the cache
    folder (the lines `pain3d info` prints); converts and downloads nothing."""
    origin, source, path = _lookup()
    if source is not None:
        if not source.exists():
            path_line = f"{source} does not exist ({origin})"
        else:
            path = source if source.suffix == ".npz" else _cache_file_for(source)
            path_line = f"{path} ({origin}{'' if path.is_file() else ', converted on first use'})"
    elif path is None:
        path_line = f"none yet: the first command downloads ICT-FaceKit into the cache. {HOW_TO_PROVIDE}"
    else:
        path_line = f"{path} ({origin})"
    sha = hashlib.sha256(path.read_bytes()).hexdigest() if path is not None and path.is_file() else "not yet known"
    return f"face model file: {path_line}\nface model sha256: {sha}\nface model cache: {cache_dir()}"


def resolve_face_model(source: str | Path | None = None, download: bool = True, progress: bool = True) -> Path:
    """The converted face model file, from (in order) `source`, $PAIN3D_FACE_MODEL, the cache, the packaged model,
    a download (when `download`)."""
    _, given, path = _lookup(source)
    if given is not None:
        return prepare_face_model(given, progress=progress)
    if path is not None:
        return path
    if download:
        return download_face_model(progress=progress)
    raise FaceModelError(
        f"no face model in {cache_dir()}, and none packaged at {PACKAGED_FACE_MODEL} (reinstall pain3d to get it "
        f"back). {HOW_TO_PROVIDE}"
    )


def packaged_arrays(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The arrays of a converted model cut to what the generator reads: every array but the expression shapes, of
    which only those the AU table (`facs.ACTION_UNITS`) drives, in the model's order. Posing adds the shapes of a
    pose one by one in the pose's order, whatever the model holds besides, so every rendered pixel stays the same."""
    driven = {shape for unit in ACTION_UNITS.values() for shape in unit.blendshapes}
    names = [str(name) for name in arrays["expression_names"]]
    missing = sorted(driven - set(names))
    if missing:
        raise FaceModelError(
            f"the face model has no expression shape {', '.join(missing)}, which the AU table drives: convert the "
            "ICT-FaceKit Light archive itself (pain3d assets --face-model ARCHIVE --export-packaged FILE)"
        )
    keep = [k for k, name in enumerate(names) if name in driven]
    return {
        **arrays,
        "expression_basis": arrays["expression_basis"][keep],
        "expression_names": np.asarray([names[k] for k in keep]),
    }


def export_packaged_face_model(source: str | Path | None, output: str | Path, progress: bool = True) -> Path:
    """Write the packaged model to `output` (.npz): `source` (the pinned ICT-FaceKit archive or folder; None: the
    pinned download) converted as the cache converts it, then cut by `packaged_arrays`. The same source gives the
    same bytes."""
    converted = prepare_face_model(source, progress=progress) if source is not None else download_face_model(progress)
    return save_face_model_arrays(packaged_arrays(read_face_model_arrays(converted)), output)


def load_face_model(source: str | Path | None = None, download: bool = True, progress: bool = True) -> FaceModel:
    """Find the model (see `resolve_face_model`: `source`, $PAIN3D_FACE_MODEL, the cache, the packaged model, then a
    download when `download`), convert it once if needed and load it."""
    return FaceModel.load(resolve_face_model(source, download=download, progress=progress))
