"""Fill the ViTPain model card template (`hub_cards/model_card.md`) from an evaluation JSON and the model config.

Evaluation JSON (what the evaluation script writes, what the card reads); `metrics` is the flat dict that the
project's `dataset_builder/pain_metrics.py` module returns::

    {
      "dataset": "SoroushMehraban/3D-Pain",          # Hub id or name; or {"id": ..., "name": ..., "config": ...}
      "split": "test",
      "num_samples": 4210,                           # optional: images evaluated
      "protocol": "identity-disjoint 70/20/10",      # optional
      "metrics": {
        "pspi_mae": 0.81, "pspi_rmse": 1.12, "pspi_pearson": 0.86, "pspi_icc": 0.84,
        "auroc_ge1": 0.93, "f1_ge1": 0.85, "f1_cutoff_ge1": 1.4, ...,   # one set per pain threshold
        "au_AU4_mae": 0.40, "au_AU4_pearson": 0.80, ...                 # one pair per action unit
      }
    }

Metric values are numbers; NaN (or null) marks a metric that is undefined on that split (e.g. AUROC with one class)
and shows as "undefined" in the table, outside the `model-index`. Known keys get readable names and standard metric
types in the card's `model-index`; decision cut-offs (`f1_cutoff_*`) are listed but are not scores; other keys are
kept under their own names.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

DEFAULT_TEMPLATE = Path(__file__).with_name("model_card.md")  # hub_cards/model_card.md, shipped as package data
TASK_TYPE = "pain-estimation"
TASK_NAME = "Pain estimation (PSPI)"

# key -> (model-index metric type, display name)
KNOWN_METRICS = {
    "pspi_mae": ("mae", "PSPI MAE"),
    "pspi_rmse": ("rmse", "PSPI RMSE"),
    "pspi_pearson": ("pearsonr", "PSPI Pearson r"),
    "pspi_icc": ("icc", "PSPI ICC(3,1)"),
}
THRESHOLD_METRIC = re.compile(r"(auroc|f1|f1_cutoff)_ge(\d+(?:\.\d+)?)")
THRESHOLD_NAMES = {"auroc": ("roc_auc", "AUROC"), "f1": ("f1", "F1"), "f1_cutoff": (None, "F1 decision cut-off")}
AU_METRIC = re.compile(r"au_(\w+?)_(mae|pearson)")
AU_NAMES = {"mae": ("mae", "MAE"), "pearson": ("pearsonr", "Pearson r")}
_LEFTOVER = re.compile(r"\{\{|\{%|\{#|\[More Information Needed\]")  # openings of unrendered jinja, HF's filler


class EvaluationError(ValueError):
    """The evaluation JSON does not have the documented shape."""


def load_evaluation(path: str | Path) -> dict[str, Any]:
    """Read and validate an evaluation JSON (shape in this module's docstring)."""
    path = Path(path)
    try:
        evaluation = json.loads(path.read_text())
    except FileNotFoundError as error:
        raise EvaluationError(f"No evaluation JSON at {path}: run the evaluation script first.") from error
    except json.JSONDecodeError as error:
        raise EvaluationError(f"{path} is not valid JSON: {error}.") from error
    validate_evaluation(evaluation, source=str(path))
    return evaluation


def validate_evaluation(evaluation: Any, source: str = "evaluation") -> None:
    """Raise `EvaluationError` naming the first problem with an evaluation dict."""
    if not isinstance(evaluation, dict):
        raise EvaluationError(f"{source}: expected a JSON object, got {type(evaluation).__name__}.")
    dataset = evaluation.get("dataset")
    if not (isinstance(dataset, str) and dataset) and not (isinstance(dataset, dict) and dataset.get("id")):
        raise EvaluationError(f'{source}: "dataset" must be a Hub id / name or an object with an "id".')
    if not isinstance(evaluation.get("split"), str) or not evaluation["split"]:
        raise EvaluationError(f'{source}: "split" must name the evaluated split (e.g. "test").')
    metrics = evaluation.get("metrics")
    if not isinstance(metrics, dict) or not metrics:
        raise EvaluationError(f'{source}: "metrics" must be a non-empty object of metric name -> number.')
    for key, value in metrics.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or math.isinf(value)):
            raise EvaluationError(
                f"{source}: metric {key!r} must be a number (NaN or null if undefined), got {value!r}."
            )
    if not any(value is not None and math.isfinite(value) for value in metrics.values()):
        raise EvaluationError(f"{source}: every metric is undefined (NaN / null): nothing to report.")


def _neutral_description(config) -> str:
    if not config.use_neutral_reference:
        return "no"
    if getattr(config, "neutral_fusion", "cross_attention") == "difference":
        how = "the backbone sees the image stacked with its difference from a neutral image of the same face"
    else:
        how = "the pain image's tokens attend to the tokens of a neutral image of the same face"
    return f"yes: {how} (pass `neutral_images=`)"


def fill_model_card(
    evaluation: dict[str, Any],
    config,
    repo_id: str,
    num_parameters: int | None = None,
    template_path: str | Path | None = None,
) -> str:
    """
    Render the model card: YAML metadata with a `model-index` built from `evaluation["metrics"]`, and a body that
    describes the model from `config` (a `ViTPainConfig`). Raises if the template leaves any placeholder unfilled.

    Args:
        evaluation: evaluation dict (see the module docstring); validated here.
        config: the model's `ViTPainConfig`.
        repo_id: Hub repository id the card is for (used in the usage snippet and as model name).
        num_parameters: total parameter count, shown in the card when given.
        template_path: the jinja2 template; defaults to `hub_cards/model_card.md` (shipped in this package).
    """
    import jinja2
    from huggingface_hub import ModelCard

    validate_evaluation(evaluation)
    template_path = Path(template_path) if template_path is not None else DEFAULT_TEMPLATE
    if not template_path.is_file():
        raise FileNotFoundError(f"Model card template not found at {template_path}: pass template_path.")

    dataset_id, dataset_name, _ = _dataset(evaluation)
    rows = _metric_rows(evaluation["metrics"])
    training = evaluation.get("training") if isinstance(evaluation.get("training"), dict) else {}
    values = {
        "card_data": _card_data(evaluation, config, repo_id, rows).to_yaml(),
        "model_name": repo_id.split("/")[-1],
        "repo_id": repo_id,
        "split": evaluation["split"],
        **_model_description(config, training),
        "num_parameters": f"{num_parameters:,}" if num_parameters is not None else "see `model.num_parameters()`",
        "fairness_table": fairness_markdown(evaluation["fairness"]) if evaluation.get("fairness") else "",
        "evaluation_sentence": _evaluation_sentence(evaluation, dataset_name, dataset_id),
        "metrics_table": "\n".join(f"| {name} | {_format(value)} |" for _, _, name, value in rows),
    }
    environment = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    text = environment.from_string(template_path.read_text()).render(**values)
    leftover = _LEFTOVER.search(text)
    if leftover:
        raise ValueError(f"The filled model card still holds a placeholder near {text[leftover.start() :][:40]!r}.")
    ModelCard(text)  # parses the YAML header: a malformed card fails here, not on the Hub
    return text


def _dataset(evaluation: dict[str, Any]) -> tuple[str, str, str | None]:
    """(Hub id, display name, config) of the evaluation's dataset: a plain name or {"id", "name", "config"}."""
    dataset = evaluation["dataset"]
    if isinstance(dataset, str):
        return dataset, dataset, None
    return dataset["id"], dataset.get("name", dataset["id"]), dataset.get("config")


def _metric_rows(metrics: dict[str, Any]) -> list[tuple[str, str | None, str, float]]:
    """(key, model-index type, display name, value) per metric; an undefined value (None) is NaN."""
    return [(key, *describe_metric(key), math.nan if value is None else float(value)) for key, value in metrics.items()]


def _card_data(evaluation: dict[str, Any], config, repo_id: str, rows):
    """The card's YAML metadata: licence, tags, dataset, base model and a `model-index` of the defined scores."""
    from huggingface_hub import EvalResult, ModelCardData

    dataset_id, dataset_name, dataset_config = _dataset(evaluation)
    eval_results = [
        EvalResult(
            task_type=TASK_TYPE,
            task_name=TASK_NAME,
            dataset_type=dataset_id,
            dataset_name=dataset_name,
            dataset_config=dataset_config,
            dataset_split=evaluation["split"],
            metric_type=metric_type,
            metric_name=metric_name,
            metric_value=value,
        )
        for _, metric_type, metric_name, value in rows
        if metric_type is not None and math.isfinite(value)  # the model-index holds defined scores only
    ]
    base_model = config.backbone_checkpoint if _looks_like_hub_id(config.backbone_checkpoint) else None
    return ModelCardData(
        model_name=repo_id.split("/")[-1],
        license="mit",
        library_name="transformers",
        tags=["pain-estimation", "facial-action-units", "pspi", "vision-transformer", "vitpain"],
        datasets=[dataset_id],
        base_model=base_model,
        eval_results=eval_results,
    )


def _model_description(config, training: dict[str, Any]) -> dict[str, str]:
    """The card's words for the model: outputs, input, backbone, how it was trained and its loss."""
    backbone = config.backbone_config
    patch = backbone.patch_size if isinstance(backbone.patch_size, int) else backbone.patch_size[0]
    thresholds = [f"{threshold:g}" for threshold in config.pain_thresholds]
    heatmap = config.input_modality == "heatmap"
    return {
        "pspi_max": f"{config.pspi_max:g}",
        "au_list": ", ".join(config.au_names),
        "threshold_list": _join(thresholds),
        "modality_sentence": (
            "This is a heatmap model: its input is a pain-region heatmap in millimetres of facial displacement from "
            "the neutral face (a teacher for RGB students), not a photo."
            if heatmap
            else "Its input is an RGB face image."
        ),
        "backbone_description": (
            f"{backbone.model_type} ({backbone.hidden_size} hidden, {backbone.num_hidden_layers} layers, "
            f"{backbone.num_attention_heads} heads, patch {patch}, {config.image_size} px)"
        ),
        "backbone_weights": (
            f"initialised from {training['initialised_from']}"
            if training.get("initialised_from")
            else f"initialised from `{config.backbone_checkpoint}`"
            if config.backbone_checkpoint
            else "trained from random initialisation"
        ),
        "training_recipe": training.get("recipe") or "supervised, on the loss below",
        "finetuning": (
            f"LoRA (rank {config.lora_rank}, alpha {config.lora_alpha:g}, dropout {config.lora_dropout:g}) on a frozen "
            "backbone"
            if config.use_lora
            else ("frozen backbone, heads only" if config.freeze_backbone else "full fine-tuning")
        ),
        "input_description": (
            f"1-channel heatmap, millimetres divided by a fixed scale, {config.image_size} px"
            if heatmap
            else f"RGB, {config.image_size} px"
        ),
        "neutral_description": _neutral_description(config),
        "loss_description": (
            f"{config.pspi_loss_weight:g} x MSE(PSPI / {config.pspi_max:g}) + {config.au_loss_weight:g} x MSE(AU / "
            f"max intensity) + {config.pain_loss_weight:g} x mean BCE over the thresholds"
        ),
        "usage_call": _usage_call(config),
    }


def _usage_call(config) -> str:
    """The pipeline call the card shows: a heatmap model reads the dataset's 16-bit heatmap PNG (micrometres)."""
    if config.input_modality == "heatmap":
        return 'pain("heatmap.png")  # the dataset\'s 16-bit heatmap PNG (micrometres), or a float map in mm'
    if config.use_neutral_reference:
        return 'pain("face.png", neutral_images="neutral_face.png")'
    return 'pain("face.png")'


def fairness_markdown(fairness: dict[str, dict[str, Any]]) -> str:
    """The fairness table of an evaluation (attribute -> {"groups": {group: row}, "largest_gap"}, as
    `dataset_builder.fairness` writes it) as Markdown: per group its identities, rows, PSPI MAE with its 95% interval
    (or "too small to rank") and AUROC per threshold; then the largest gap in PSPI MAE per attribute with its
    interval. An evaluation written before identity counts (attribute -> group -> {"n", ...}) shows rows only."""
    fairness = {
        attribute: table if "groups" in table else
        {"groups": {group: {"rows": row["n"], **row} for group, row in table.items()}, "largest_gap": None}
        for attribute, table in fairness.items()
    }
    first = next(iter(next(iter(fairness.values()))["groups"].values()))
    aurocs = [key for key in first if THRESHOLD_METRIC.fullmatch(key) and key.startswith("auroc")]
    lines = [
        "| Attribute | Group | Identities | Rows | PSPI MAE (95% interval) | "
        + " | ".join(describe_metric(key)[1] for key in aurocs) + " |",
        "| --- | --- | --- | --- | --- |" + " --- |" * len(aurocs),
    ]
    for attribute, table in fairness.items():
        for group, row in table["groups"].items():
            mae = _format_fairness(row["pspi_mae"])
            if row.get("pspi_mae_ci"):
                mae += f" ({_format_fairness(row['pspi_mae_ci'][0])} to {_format_fairness(row['pspi_mae_ci'][1])})"
            elif row.get("ranked") is False:
                count = row["identities"]
                mae += f", too small to rank ({count} identit{'y' if count == 1 else 'ies'})"
            cells = [str(row.get("identities", "-")), str(row["rows"]), mae]
            lines.append(f"| {attribute} | {group} | " + " | ".join(cells + [_format_fairness(row[k]) for k in aurocs])
                         + " |")
    gaps = [(attribute, table["largest_gap"]) for attribute, table in fairness.items() if table["largest_gap"]]
    if any("identities" in row for table in fairness.values() for row in table["groups"].values()):
        lines += ["", "Intervals: 95% bootstrap that resamples identities (all rows of a person together). A group "
                  "with too few identities to rank is left out of the gaps."]
    if gaps:
        lines += ["", "| Attribute | Largest gap in PSPI MAE | Between | 95% interval |", "| --- | --- | --- | --- |"]
        for attribute, gap in gaps:
            low, high = gap["pspi_mae_ci"]
            lines.append(f"| {attribute} | {_format_fairness(gap['pspi_mae'])} | {gap['higher']} - {gap['lower']} | "
                         f"{_format_fairness(low)} to {_format_fairness(high)} |")
        lines += ["", "A gap whose interval includes 0 is one this test split cannot tell from chance."]
    return "\n".join(lines)


def _format_fairness(value) -> str:
    return "undefined" if value is None or not math.isfinite(value) else f"{value:.3f}"


def describe_metric(key: str) -> tuple[str | None, str]:
    """
    (model-index metric type, display name) of a metric key from `dataset_builder/pain_metrics.py`, e.g. `auroc_ge2` ->
    ("roc_auc", "AUROC (PSPI >= 2)"), `au_AU4_mae` -> ("mae", "AU4 MAE"). The type is None for values that are not
    scores (decision cut-offs); unknown keys keep their own name.
    """
    if key in KNOWN_METRICS:
        return KNOWN_METRICS[key]
    if match := THRESHOLD_METRIC.fullmatch(key):
        metric_type, name = THRESHOLD_NAMES[match.group(1)]
        return metric_type, f"{name} (PSPI >= {match.group(2)})"
    if match := AU_METRIC.fullmatch(key):
        metric_type, name = AU_NAMES[match.group(2)]
        return metric_type, f"{match.group(1)} {name}"
    return key, key


def _evaluation_sentence(evaluation: dict[str, Any], dataset_name: str, dataset_id: str) -> str:
    details = [f"`{evaluation['split']}` split"]
    if evaluation.get("num_samples") is not None:
        details.append(f"{int(evaluation['num_samples']):,} images")
    if evaluation.get("protocol"):
        details.append(str(evaluation["protocol"]))
    where = dataset_name if dataset_name == dataset_id else f"{dataset_name} (`{dataset_id}`)"
    return f"Evaluated on {where}, {', '.join(details)}.{_provenance_sentence(evaluation.get('provenance'))}"


def _provenance_sentence(origin: Any) -> str:
    """Where the numbers come from, as the training scripts record it (`evaluation["provenance"]`): the project's
    commit, whether its tree had uncommitted changes, and the dataset's fingerprint."""
    if not isinstance(origin, dict) or not (origin.get("commit") or origin.get("dataset_fingerprint")):
        return ""
    commit = f"`{str(origin['commit'])[:12]}`" if origin.get("commit") else "an unrecorded commit"
    changes = " with uncommitted changes" if origin.get("dirty") else ""
    fingerprint = origin.get("dataset_fingerprint")
    data = f"the dataset with fingerprint `{str(fingerprint)[:12]}`" if fingerprint else "an unfingerprinted dataset"
    return f" Trained and evaluated by 3DPain's code at commit {commit}{changes}, on {data}."


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def _format(value: float) -> str:
    return f"{value:.4g}" if math.isfinite(value) else "undefined"


def _looks_like_hub_id(name: str | None) -> bool:
    return bool(name) and re.fullmatch(r"[\w.-]+/[\w.-]+", name) is not None and not Path(name).exists()


__all__ = [
    "EvaluationError",
    "describe_metric",
    "fairness_markdown",
    "fill_model_card",
    "load_evaluation",
    "validate_evaluation",
]
