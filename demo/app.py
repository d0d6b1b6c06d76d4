"""3DPain demo (a Hugging Face Space): rig a pain face, estimate pain with ViTPain, browse a generated dataset.

    python demo/app.py [--model DIR_OR_ID] [--dataset DIR] [--dataset-root DIR] [--face-model PATH] [--port P] [--share]

Every endpoint's inputs are checked on the server (hidden ones too): wrong types or values are one clear message, and
the Browse tab opens only --dataset or folders under --dataset-root, never any other folder of the server.

The API (gradio_client): `/render` (AU4 ... AU26, age, gender, ethnicity, seed, view, landmarks, passes), `/clip`
(apex_pspi, age, gender, ethnicity, seed, view) and `/estimate` (image, neutral_image, face_crop).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling modules, also when imported from elsewhere

import gradio as gr  # noqa: E402

from dataset_browser import ANY, DatasetFolderError, DatasetFolders  # noqa: E402
from face_studio import CLIP_FPS, CLIP_SECONDS, MAX_AGE, MIN_AGE, VIEWS, FaceStudio, pspi_formula  # noqa: E402
from generation import ACTION_UNITS, EXTENDED_AUS, PAIN_AUS, PSPI_MAX, FaceModel  # noqa: E402
from generation.demographics import AGE_GROUP_NAMES, ETHNICITIES, GENDERS  # noqa: E402
from generation.face.assets import resolve_face_model  # noqa: E402
from generation.views import DEFAULT_IMAGE_SIZE  # noqa: E402
from page_files import PageFiles  # noqa: E402
from pain_estimator import (  # noqa: E402
    TRAIN_COMMAND, NoFaceError, PainEstimator, message_html, pspi_gauge,
)  # fmt: skip

logger = logging.getLogger("pain3d.demo")
FACE_MODEL_NOTICE = (
    "Faces come from ICT-FaceKit Light (MIT License, Copyright (c) 2020 USC Institute for Creative Technologies)."
)
OPENING_EXPRESSION = {"AU4": 2, "AU6": 2, "AU7": 3, "AU9": 0, "AU10": 2, "AU43": 0}  # PSPI 7
CSS = """
.gradio-container {max-width: 1280px !important; margin: auto}
#title h1 {margin-bottom: 0.1em}
#pspi-formula {font-size: 1.05em}
.pspi-gauge {display: flex; justify-content: center; color: var(--body-text-color)}
.demo-message {padding: 0.8em 1em; border-radius: 8px; font-weight: 600}
.demo-info {background: var(--color-accent-soft); color: var(--body-text-color)}
.demo-warning {background: #fef3c7; color: #92400e}
.au-bars {display: grid; grid-template-columns: 9em 1fr 3em; gap: 0.35em 0.6em; align-items: center}
.au-bars .track {background: var(--border-color-primary); border-radius: 4px; height: 0.9em}
.au-bars .fill {background: var(--color-accent); border-radius: 4px; height: 100%}
.au-bars .value {text-align: right; font-variant-numeric: tabular-nums}
"""


def au_bars_html(action_units: dict[str, float]) -> str:
    """Horizontal bars of AU intensities on each AU's own scale (0-5; AU43 0-1)."""
    rows = []
    for name, value in action_units.items():
        top = ACTION_UNITS[name].max_intensity if name in ACTION_UNITS else 5
        description = ACTION_UNITS[name].description if name in ACTION_UNITS else ""
        width = 100 * min(max(value / top, 0.0), 1.0)
        rows.append(
            f'<span>{name} <small>{description}</small></span><div class="track"><div class="fill" '
            f'style="width:{width:.0f}%"></div></div><span class="value">{value:.2f}</span>'
        )
    return f'<div class="au-bars">{"".join(rows)}</div>'


def _number(name: str, value, low: float, high: float) -> float:
    """`value` if it is a number within low-high (not a bool, not NaN); gr.Error naming the input otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise gr.Error(f"{name} must be a number within {low:g}-{high:g}, got {str(value)[:40]!r}")
    return value


def _choice(name: str, value, choices) -> str:
    if value not in choices:
        raise gr.Error(f"{name} must be one of {', '.join(map(str, choices))}; got {str(value)[:40]!r}")
    return value


# ----------------------------------------------------------------------------------------------- the three tabs
def rig_tab(studio: FaceStudio | None, problem: str | None, files: PageFiles):
    """The Rig tab; returns (render, inputs, outputs, pain sliders) for the page-load event, or None."""
    if studio is None:
        gr.Markdown(f"**The face model is missing.** {problem}")
        return
    sliders = {}
    with gr.Row():
        with gr.Column(scale=3, min_width=300):
            with gr.Group():
                for name in PAIN_AUS:
                    unit = ACTION_UNITS[name]
                    sliders[name] = gr.Slider(
                        0, unit.max_intensity, value=0, step=1 if unit.binary else 0.5,
                        label=f"{name} {unit.description}", elem_id=name.lower(),
                    )  # fmt: skip
            with gr.Accordion("Distractor AUs (not part of PSPI)", open=False):
                for name in EXTENDED_AUS:
                    unit = ACTION_UNITS[name]
                    sliders[name] = gr.Slider(
                        0, unit.max_intensity, value=0, step=0.5, label=f"{name} {unit.description}",
                        elem_id=name.lower(),
                    )  # fmt: skip
            landmarks = gr.Checkbox(value=False, label="Show the 68 landmarks", elem_id="landmarks")
            show_passes = gr.Checkbox(value=False, label="Show depth, normals and segmentation", elem_id="passes")
        with gr.Column(scale=9):
            formula = gr.Markdown(label="PSPI", elem_id="pspi-formula")
            with gr.Row(equal_height=True):
                neutral_out = gr.Image(label="Neutral", format="png", elem_id="neutral-image", buttons=["download"],
                                       height=300, scale=4, min_width=160)
                pain_out = gr.Image(label="Pain", format="png", elem_id="pain-image", buttons=["download"],
                                    height=300, scale=4, min_width=160)
                heatmap_out = gr.Image(label="Heatmap (mm moved)", format="png", elem_id="heatmap-image",
                                       buttons=["download"], height=300, scale=5, min_width=200)  # fmt: skip
            with gr.Group():
                with gr.Row():
                    age = gr.Slider(MIN_AGE, MAX_AGE, value=45, step=1, label="Age (years)", elem_id="age", scale=3)
                    gender = gr.Radio(list(GENDERS), value="female", label="Gender", elem_id="gender", scale=2)
                    seed = gr.Number(value=7, precision=0, minimum=0, label="Seed (identity)", elem_id="seed",
                                     scale=1, min_width=110)  # fmt: skip
                with gr.Row():
                    ethnicity = gr.Dropdown(list(ETHNICITIES), value="White", label="Ethnicity", elem_id="ethnicity")
                    view = gr.Radio(list(VIEWS), value="frontal", label="View", elem_id="view")
            with gr.Row(equal_height=True):  # the pain face's ground-truth passes, when asked (docs/ground_truth.md)
                pass_outs = [gr.Image(label=label, format="png", elem_id=f"{name}-image", height=220, min_width=140)
                             for name, label in (("depth", "Depth (near is bright)"), ("normals", "Normals (camera)"),
                                                 ("segmentation", "Segmentation (classes)"))]  # fmt: skip
            with gr.Accordion("Labels (as in a dataset row)", open=False):
                labels_out = gr.JSON(label="Labels", elem_id="rig-labels")
            gr.Markdown(
                "The heatmap is how far each visible point of the face moved from the neutral face, in millimetres, "
                "on a fixed scale. A render takes about a tenth of a second once the identity is cached. "
                + FACE_MODEL_NOTICE
            )

    def render(AU4, AU6, AU7, AU9, AU10, AU43, AU12, AU20, AU25, AU26, age, gender, ethnicity, seed, view,  # noqa: N803
               landmarks=False, passes=False):  # fmt: skip
        """Render a synthetic face neutral and in pain; return neutral, pain, heatmap, the PSPI formula, labels and,
        with `passes`, the pain face's depth, normals and segmentation (else None each)."""
        action_units = {"AU4": AU4, "AU6": AU6, "AU7": AU7, "AU9": AU9, "AU10": AU10, "AU43": AU43,
                        "AU12": AU12, "AU20": AU20, "AU25": AU25, "AU26": AU26}  # fmt: skip
        # The inputs arrive unprocessed (preprocess=False): every one is checked here, whoever sent it.
        for name, value in action_units.items():
            _number(name, value, 0, ACTION_UNITS[name].max_intensity)
        _number("age", age, MIN_AGE, MAX_AGE)
        _choice("gender", gender, GENDERS)
        _choice("ethnicity", ethnicity, ETHNICITIES)
        seed = _number("seed", seed if seed is not None else 0, 0, 2**32 - 1)
        _choice("view", view, VIEWS)
        if not isinstance(landmarks, bool):
            raise gr.Error(f"landmarks must be true or false, got {str(landmarks)[:40]!r}")
        if not isinstance(passes, bool):
            raise gr.Error(f"passes must be true or false, got {str(passes)[:40]!r}")
        try:
            out = studio.render(
                action_units, age=age, gender=gender, ethnicity=ethnicity, seed=int(seed or 0), view=view,
                landmarks=bool(landmarks), passes=passes,
            )  # fmt: skip
        except ValueError as error:
            raise gr.Error(str(error)) from None
        labels = {
            "pspi": out.pspi,
            "action_units": out.action_units,
            "heatmap_max_mm": round(float(out.heatmap_mm.max()), 3),
            "identity": {"age": int(age), "gender": gender, "ethnicity": ethnicity, "seed": int(seed or 0)},
            "view": view,
            "render_seconds": round(out.seconds, 3),
        }
        text = f"### PSPI = {out.pspi:g} / {PSPI_MAX}\n{pspi_formula(action_units)}"
        shown = [out.passes[name] for name in ("depth", "normals", "segmentation")] if out.passes else [None] * 3
        images = (files.image(pixels) for pixels in (out.neutral, out.pain, out.heatmap, *shown))
        neutral, pain, heatmap, *shown = images
        return neutral, pain, heatmap, text, labels, *shown

    inputs = [*(sliders[name] for name in (*PAIN_AUS, *EXTENDED_AUS)), age, gender, ethnicity, seed, view, landmarks,
              show_passes]
    outputs = [neutral_out, pain_out, heatmap_out, formula, labels_out, *pass_outs]
    gr.on(
        triggers=[component.change for component in inputs], fn=render, inputs=inputs, outputs=outputs,
        api_name="render", trigger_mode="always_last", concurrency_limit=1, show_progress="minimal",
        preprocess=False,  # render() checks every input itself: a wrong type is its message, not Gradio's generic one
    )  # fmt: skip
    return render, inputs, outputs, [sliders[name] for name in PAIN_AUS]


def clip_animation(frames, fps: int, files: PageFiles) -> str:
    """The frames as an animated WebP file that every browser plays (the stored H.264 is 4:4:4, which many do not)."""
    import io

    from PIL import Image

    images = [Image.fromarray(frame) for frame in frames]
    buffer = io.BytesIO()
    images[0].save(buffer, format="WEBP", save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0,
                   quality=90)
    return files.write(buffer.getvalue(), ".webp")


def clip_curves(clip, title: str, files: PageFiles) -> str:
    """The clip's AU and PSPI curves (the clip card's plot) as a PNG file."""
    import io

    from dataset_builder.clip_card import plot_clip_curves

    d = clip.dynamics
    row = {"clip_id": title, "fps": d.fps, "num_frames": d.num_frames, "pspi": d.pspi,
           "action_units": d.action_units, "episodes": [{"apex_start": e.apex_start, "apex_end": e.apex_end}
                                                        for e in d.episodes]}  # fmt: skip
    buffer = io.BytesIO()
    plot_clip_curves(row, buffer)
    return files.write(buffer.getvalue(), ".png")


def clip_tab(studio: FaceStudio | None, problem: str | None, files: PageFiles) -> None:
    """The Clip tab: a person acting pain up to a chosen apex PSPI, played on the page with its curves."""
    if studio is None:
        gr.Markdown(f"**The face model is missing.** {problem}")
        return
    with gr.Row():
        with gr.Column(scale=3, min_width=300):
            apex = gr.Slider(1, PSPI_MAX, value=8, step=1, label="Apex PSPI", elem_id="clip-apex")
            age = gr.Slider(MIN_AGE, MAX_AGE, value=45, step=1, label="Age (years)", elem_id="clip-age")
            gender = gr.Radio(list(GENDERS), value="female", label="Gender", elem_id="clip-gender")
            ethnicity = gr.Dropdown(list(ETHNICITIES), value="White", label="Ethnicity", elem_id="clip-ethnicity")
            seed = gr.Number(value=7, precision=0, minimum=0, label="Seed (identity)", elem_id="clip-seed")
            view = gr.Radio(list(VIEWS), value="frontal", label="View", elem_id="clip-view")
            button = gr.Button("Render the clip", variant="primary", elem_id="clip-render")
        with gr.Column(scale=9):
            animation = gr.Image(label=f"Clip ({CLIP_SECONDS:g} s at {CLIP_FPS} fps)", type="filepath",
                                 elem_id="clip-animation", height=320)
            curves = gr.Image(label="AU and PSPI curves", type="filepath", elem_id="clip-curves")
            with gr.Accordion("Labels (per frame, as in a clip row)", open=False):
                labels_out = gr.JSON(label="Labels", elem_id="clip-labels")
            gr.Markdown(
                f"A {CLIP_SECONDS:g} s clip as `pain3d clips` makes them: at least 1 s at rest, then one pain episode "
                "(onset, apex, offset) with brow lowering and orbital tightening leading, spontaneous blinks (AU45, "
                "outside PSPI) and a few degrees of head motion. " + FACE_MODEL_NOTICE
            )

    def clip(apex_pspi, age, gender, ethnicity, seed, view):
        """Render a short pain clip; return it as an animated WebP, its curves and its per-frame labels."""
        apex_pspi = _number("apex_pspi", apex_pspi, 1, PSPI_MAX)
        _number("age", age, MIN_AGE, MAX_AGE)
        _choice("gender", gender, GENDERS)
        _choice("ethnicity", ethnicity, ETHNICITIES)
        seed = _number("seed", seed if seed is not None else 0, 0, 2**32 - 1)
        _choice("view", view, VIEWS)
        if apex_pspi != int(apex_pspi):
            raise gr.Error(f"apex_pspi must be a whole number within 1-{PSPI_MAX}, got {apex_pspi!r}")
        try:
            out = studio.clip(int(apex_pspi), age=age, gender=gender, ethnicity=ethnicity, seed=int(seed), view=view)
        except ValueError as error:
            raise gr.Error(str(error)) from None
        d = out.dynamics
        labels = {
            "fps": d.fps, "num_frames": d.num_frames, "apex_pspi": d.apex_pspi, "pspi": d.pspi.tolist(),
            "action_units": {name: curve.tolist() for name, curve in d.action_units.items()},
            "head_pose": dict(zip(("yaw", "pitch", "roll"), out.head_pose.T.round(3).tolist())),
            "blinks": [{"start": round(a, 3), "duration": round(b, 3)} for a, b in d.blinks],
            "identity": {"age": int(age), "gender": gender, "ethnicity": ethnicity, "seed": int(seed)},
            "render_seconds": round(out.seconds, 3),
        }  # fmt: skip
        title = f"seed {int(seed)}, apex PSPI {int(apex_pspi)}"
        return clip_animation(out.frames, d.fps, files), clip_curves(out, title, files), labels

    button.click(clip, [apex, age, gender, ethnicity, seed, view], [animation, curves, labels_out], api_name="clip",
                 concurrency_limit=1, preprocess=False)


def estimate_tab(estimator: PainEstimator | None, problem: str | None, files: PageFiles) -> None:
    if estimator is None:
        gr.Markdown(
            f"{problem + ' ' if problem else ''}**No ViTPain model is loaded.** Start the demo with "
            "`--model DIR_OR_HUB_ID` (an RGB model folder written by the training scripts). To train one:\n\n"
            f"```bash\n{TRAIN_COMMAND}\n```",
            elem_id="no-model",
        )
    else:
        gr.Markdown(
            estimator.describe() + " Photos are searched for a face (dlib's HOG detector and 68 landmarks), which is "
            "aligned to the framing of the generated faces (`dataset_builder.align_photo`); tick 'already a face "
            "crop' to skip that.",
            elem_id="model-info",
        )
    with gr.Row():
        with gr.Column(scale=4, min_width=300):
            image = gr.Image(sources=["upload", "webcam"], type="pil", label="Face photo", elem_id="face-photo")
            neutral_image = gr.Image(
                sources=["upload", "webcam"], type="pil", label="Neutral photo of the same person (optional)",
                elem_id="neutral-photo",
            )  # fmt: skip
            face_crop = gr.Checkbox(value=False, label="Already a face crop (skip detection)", elem_id="face-crop")
            button = gr.Button("Estimate pain", variant="primary", elem_id="estimate-button")
        with gr.Column(scale=8):
            with gr.Row():
                with gr.Column(min_width=260):
                    gauge = gr.HTML(message_html("Upload a face photo and press 'Estimate pain'."), label="PSPI",
                                    elem_id="pspi-out")
                    probability = gr.Label(label="Pain probability", num_top_classes=3, elem_id="pain-probability")
                with gr.Column(min_width=260):
                    bars = gr.HTML(label="Action units", elem_id="au-bars")
                    face_seen = gr.Image(label="What the model saw", format="png", height=200, elem_id="aligned-face")
            attention = gr.Gallery(label="Per-AU attention over the face (au_attentions)", columns=6, height=190,
                                   object_fit="contain", format="png", elem_id="attention-maps")  # fmt: skip
            with gr.Accordion("Result (JSON)", open=False):
                result_json = gr.JSON(label="Result", elem_id="estimate-json")

    def estimate(image, neutral_image=None, face_crop=False):
        """Estimate PSPI, AU intensities and pain probabilities from a face photo (and a neutral photo)."""
        if estimator is None:
            raise gr.Error(f"No ViTPain model is loaded: start the demo with --model DIR_OR_ID. To train one: "
                           f"{TRAIN_COMMAND}")  # fmt: skip
        if not isinstance(face_crop, bool):
            raise gr.Error(f"face_crop must be true or false, got {str(face_crop)[:40]!r}")
        try:
            out = estimator(image, neutral_image, is_crop=face_crop)
        except NoFaceError as error:
            return message_html(str(error), "warning"), None, "", None, [], {"error": str(error)}
        except ValueError as error:
            raise gr.Error(str(error)) from None
        notes = "".join(message_html(note) for note in out.notes)
        return (
            pspi_gauge(out.pspi) + notes,
            out.pain_probability,
            au_bars_html(out.action_units),
            files.image(out.face),
            [(files.image(image), label) for image, label in out.attention_maps],
            out.as_dict(),
        )

    button.click(
        estimate, inputs=[image, neutral_image, face_crop],
        outputs=[gauge, probability, bars, face_seen, attention, result_json], api_name="estimate",
    )  # fmt: skip


def browse_tab(default_folder: str | None, gallery_size: int = 12, root: str | None = None):
    folders = DatasetFolders(default_folder, root)  # the only folders any request may open
    gr.Markdown("A folder written by `pain3d generate --output DIR` (rows are read from its parquet shards)"
                + (f"; folders under `{folders.root}` can be opened." if root else "."))
    with gr.Row():
        folder = gr.Textbox(value=default_folder or "", label="Dataset folder", scale=4, elem_id="dataset-folder",
                            interactive=bool(root))
        load = gr.Button("Load", scale=1, elem_id="dataset-load")
    summary = gr.Markdown(elem_id="dataset-summary")
    with gr.Row():
        split = gr.Dropdown([ANY], value=ANY, label="Split", elem_id="filter-split")
        pspi_min = gr.Slider(0, PSPI_MAX, value=1, step=1, label="PSPI from")
        pspi_max = gr.Slider(0, PSPI_MAX, value=PSPI_MAX, step=1, label="PSPI to")
    with gr.Row():
        age_group = gr.Dropdown([ANY, *AGE_GROUP_NAMES], value=ANY, label="Age group")
        gender = gr.Dropdown([ANY, *GENDERS], value=ANY, label="Gender")
        ethnicity = gr.Dropdown([ANY, *ETHNICITIES], value=ANY, label="Ethnicity")
        view = gr.Dropdown([ANY], value=ANY, label="View")
    with gr.Row():
        with gr.Column(scale=3):
            gallery = gr.Gallery(label="neutral | pain / heatmap (0-12 mm) | labels", columns=3, height=560,
                                 object_fit="contain", format="png", elem_id="dataset-gallery")  # fmt: skip
        with gr.Column(scale=2):
            labels = gr.JSON(label="Row labels (select an image)", elem_id="row-labels", height=560)
    shown = gr.State([])

    def browser_for(path):
        try:
            return folders.open(path)
        except DatasetFolderError as error:
            raise gr.Error(str(error)) from None

    def open_folder(path):
        if not path:
            return "Type the path of a generated dataset folder.", gr.update(), gr.update()
        try:
            browser = folders.open(path)
        except (DatasetFolderError, OSError) as error:
            return f"**{error}**", gr.update(choices=[ANY], value=ANY), gr.update(choices=[ANY], value=ANY)
        return (
            browser.summary(),
            gr.update(choices=[ANY, *browser.splits], value=ANY),
            gr.update(choices=browser.choices("view"), value=ANY),
        )

    def show(path, split, pspi_min, pspi_max, age_group, gender, ethnicity, view):
        if not path:
            return [], [], None
        try:
            folders.allowed(path)  # a folder it may not open is an error, not "no rows"
        except DatasetFolderError as error:
            raise gr.Error(str(error)) from None
        try:
            browser = folders.open(path)
        except (DatasetFolderError, OSError):
            return [], [], None
        try:
            matches = browser.filter(split, pspi_min, pspi_max, age_group, gender, ethnicity, view)
        except DatasetFolderError as error:
            raise gr.Error(str(error)) from None
        picked = matches[:gallery_size]
        items = [(browser.tile(index), browser.caption(index)) for index in picked]
        first = browser.labels(picked[0]) | {"matching_rows": len(matches)} if picked else {"matching_rows": 0}
        return items, picked, first

    def select(path, picked, event: gr.SelectData):
        browser = browser_for(path)
        if not isinstance(event.index, int) or not isinstance(picked, list) or not 0 <= event.index < len(picked):
            raise gr.Error("select a tile of the gallery")
        try:
            return browser.labels(picked[event.index])
        except DatasetFolderError as error:
            raise gr.Error(str(error)) from None

    filters = [folder, split, pspi_min, pspi_max, age_group, gender, ethnicity, view]
    # preprocess=False: the raw values reach open_folder and show, which check each one (DatasetFolders, filter)
    load.click(open_folder, folder, [summary, split, view], api_visibility="private", preprocess=False).then(
        show, filters, [gallery, shown, labels], api_visibility="private", preprocess=False
    )
    folder.submit(open_folder, folder, [summary, split, view], api_visibility="private", preprocess=False)
    gr.on(
        [c.change for c in filters[1:]], show, filters, [gallery, shown, labels], api_visibility="private",
        trigger_mode="always_last", preprocess=False,
    )  # fmt: skip
    gallery.select(select, [folder, shown], labels, api_visibility="private")
    return open_folder, show, folder, filters, summary, split, view, gallery, shown, labels


def build_demo(studio: FaceStudio | None, estimator: PainEstimator | None, dataset: str | None = None,
               face_problem: str | None = None, model_problem: str | None = None,
               dataset_root: str | None = None) -> gr.Blocks:  # fmt: skip
    files = PageFiles()  # what the page shows, written whole before it can be fetched
    with gr.Blocks(title="3DPain: synthetic pain faces and ViTPain") as demo:
        gr.Markdown(
            "# 3DPain\nSynthetic pain faces with exact FACS labels, and ViTPain, a pain-estimation Vision "
            "Transformer. PSPI = AU4 + max(AU6, AU7) + max(AU9, AU10) + AU43 (0-16).",
            elem_id="title",
        )
        with gr.Tabs():
            with gr.Tab("Rig a pain face", id="rig"):
                rig = rig_tab(studio, face_problem, files)
            with gr.Tab("Clip", id="clip"):
                clip_tab(studio, face_problem, files)
            with gr.Tab("Estimate pain", id="estimate"):
                estimate_tab(estimator, model_problem, files)
            with gr.Tab("Browse a dataset", id="browse"):
                browse = browse_tab(dataset, root=dataset_root)
        if rig is not None:
            render, inputs, outputs, pain_sliders = rig
            # open on a moderate pain face; the sliders' change events render it (the API defaults stay 0)
            demo.load(lambda: list(OPENING_EXPRESSION.values()), None, pain_sliders, api_visibility="private")
        open_folder, show, folder, filters, summary, split, view, gallery, shown, labels = browse
        if dataset:
            demo.load(open_folder, folder, [summary, split, view], api_visibility="private", preprocess=False).then(
                show, filters, [gallery, shown, labels], api_visibility="private", preprocess=False
            )
    return demo


def theme() -> gr.themes.Base:
    system = ["ui-sans-serif", "system-ui", "Segoe UI", "Helvetica", "Arial", "sans-serif"]  # no web fonts offline
    return gr.themes.Soft(primary_hue="orange", secondary_hue="slate", font=system,
                          font_mono=["ui-monospace", "Menlo", "monospace"])  # fmt: skip


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=os.environ.get("PAIN3D_DEMO_MODEL"),
                        help="ViTPain folder or Hub id for the Estimate tab (default: $PAIN3D_DEMO_MODEL; none)")
    parser.add_argument("--dataset", default=os.environ.get("PAIN3D_DEMO_DATASET"),
                        help="generated dataset folder for the Browse tab (the only folder it opens)")
    parser.add_argument("--dataset-root", metavar="DIR", default=os.environ.get("PAIN3D_DEMO_DATASET_ROOT"),
                        help="also let the Browse tab open dataset folders under DIR (default: none)")
    parser.add_argument("--face-model", metavar="PATH", help="ICT-FaceKit archive or folder (default: "
                        "$PAIN3D_FACE_MODEL, the cache, then a download)")
    parser.add_argument("--image-size", type=int, default=DEFAULT_IMAGE_SIZE,
                        help=f"render size in pixels (default {DEFAULT_IMAGE_SIZE})")
    parser.add_argument("--port", type=int, default=None, help="port (default: $GRADIO_SERVER_PORT or 7860)")
    parser.add_argument("--host", default=None, help="address to listen on (default 127.0.0.1; 0.0.0.0 on Spaces)")
    parser.add_argument("--share", action="store_true", help="also open a public gradio.live link (needs a network)")
    return parser.parse_args(argv)  # fmt: skip


def load_estimator(model: str | None) -> tuple[PainEstimator | None, str | None]:
    """The Estimate tab's model (a folder the training scripts wrote, or a Hub id) and, when it cannot load, why."""
    if not model:
        return None, None
    try:
        return PainEstimator(model), None
    except Exception as error:  # the other tabs still work; the Estimate tab says what is wrong
        logger.error("model: %s", error)
        return None, f"Could not load {model!r}: {error}."


def main(argv=None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    studio, face_problem = None, None
    try:
        studio = FaceStudio(FaceModel.load(resolve_face_model(args.face_model, progress=False)), args.image_size)
    except Exception as error:  # the other tabs still work; the Rig tab says what is missing
        face_problem = str(error)
        logger.error("face model: %s", error)
    estimator, model_problem = load_estimator(args.model)
    demo = build_demo(studio, estimator, args.dataset, face_problem, model_problem, dataset_root=args.dataset_root)
    demo.queue(default_concurrency_limit=1).launch(
        server_name=args.host, server_port=args.port, share=args.share, theme=theme(), css=CSS, ssr_mode=False,
        footer_links=["api"],
    )  # fmt: skip


if __name__ == "__main__":
    main()
