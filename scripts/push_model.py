#!/usr/bin/env python
"""Upload a ViTPain model folder to the Hugging Face Hub: weights (safetensors), config with `auto_map`, the remote
code, the image processor, the `pain-estimation` pipeline entry and a model card filled from an evaluation JSON.

    python scripts/push_model.py out/vitpain --repo_id me/vitpain-rgb --evaluation out/vitpain/evaluation.json
    python scripts/push_model.py out/vitpain --repo_id me/vitpain-rgb --stage-only out/upload  # build, do not upload

When the Hub cannot be reached (HF_HUB_OFFLINE=1, no network, no token) it says so in one message and exits non-zero.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import HfApi, constants
from huggingface_hub.errors import HfHubHTTPError, LocalTokenNotFoundError, OfflineModeIsEnabled
from transformers import AutoImageProcessor, AutoModel, pipeline

import modeling_vitpain
from modeling_vitpain.model_card import DEFAULT_TEMPLATE, EvaluationError, fill_model_card, load_evaluation
from safe_output import UsageError, check_output_dir, swap_in

logger = logging.getLogger("push_model")
TEMPLATE = DEFAULT_TEMPLATE
EXIT_BAD_INPUT, EXIT_HUB_UNREACHABLE = 1, 2


@dataclass
class PushConfig:
    model_dir: Path
    repo_id: str
    evaluation: Path | None = None  # defaults to <model_dir>/evaluation.json
    private: bool = False
    commit_message: str = "Upload ViTPain model"
    stage_only: Path | None = None  # write the upload-ready folder here and stop
    overwrite: bool = False  # let --stage-only replace an earlier staged folder (only the files it recorded)


def parse_args(argv: list[str] | None = None) -> PushConfig:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir", type=Path, help="folder written by save_pretrained / the training script")
    parser.add_argument("--repo_id", "--repo-id", dest="repo_id", required=True,
                        help="Hub repository, e.g. user/vitpain-rgb (as the training scripts' --repo_id)")
    parser.add_argument("--evaluation", type=Path, help="evaluation JSON (default: MODEL_DIR/evaluation.json)")
    parser.add_argument("--private", action="store_true", help="create the repository as private")
    parser.add_argument("--commit-message", default=PushConfig.commit_message)
    parser.add_argument("--stage-only", type=Path, help="write the upload-ready folder here and do not upload")
    parser.add_argument(
        "--overwrite", action="store_true", help="with --stage-only: replace an earlier staged folder there"
    )
    return PushConfig(**vars(parser.parse_args(argv)))


def hub_is_offline() -> bool:
    """True when HF_HUB_OFFLINE is set (read at call time so tests and callers can change it)."""
    return constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE", "").upper() in {"1", "ON", "YES", "TRUE"}


def stage(cfg: PushConfig, folder: Path) -> Path:
    """Write everything the Hub repository should hold into `folder`; returns it."""
    model = AutoModel.from_pretrained(cfg.model_dir)
    if not isinstance(model, modeling_vitpain.ViTPainModel):
        raise ValueError(f"{cfg.model_dir} holds a {type(model).__name__}, not a ViTPain model.")
    if (cfg.model_dir / "preprocessor_config.json").is_file():
        processor = AutoImageProcessor.from_pretrained(cfg.model_dir)
    else:
        logger.warning("%s has no preprocessor_config.json: using the processor that matches the config", cfg.model_dir)
        processor = modeling_vitpain.ViTPainImageProcessor.from_model_config(model.config)
    evaluation_path = cfg.evaluation or cfg.model_dir / "evaluation.json"
    evaluation = load_evaluation(evaluation_path)
    card = fill_model_card(
        evaluation, model.config, cfg.repo_id, num_parameters=model.num_parameters(), template_path=TEMPLATE
    )
    folder.mkdir(parents=True, exist_ok=True)
    # Saving through the pipeline also records `custom_pipelines` and copies the pipeline code.
    pipeline(modeling_vitpain.PIPELINE_TASK, model=model, image_processor=processor).save_pretrained(folder)
    (folder / "README.md").write_text(card)
    shutil.copyfile(evaluation_path, folder / "evaluation.json")
    return folder


def upload(cfg: PushConfig, folder: Path, api: HfApi) -> str:
    """Create the repository if needed and upload `folder`; returns the repository URL."""
    api.whoami()  # fails early, before creating anything, when there is no valid token
    repo_url = api.create_repo(cfg.repo_id, private=cfg.private, exist_ok=True, repo_type="model")
    api.upload_folder(repo_id=cfg.repo_id, folder_path=str(folder), commit_message=cfg.commit_message)
    return str(repo_url)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    cfg = parse_args(argv)
    if cfg.stage_only is None and hub_is_offline():
        print(
            "push_model: the Hugging Face Hub is not reachable because HF_HUB_OFFLINE=1 is set; nothing was uploaded. "
            "Unset HF_HUB_OFFLINE to upload, or use --stage-only DIR to build the upload folder offline.",
            file=sys.stderr,
        )
        return EXIT_HUB_UNREACHABLE
    try:
        if cfg.stage_only is not None:
            # checked before anything is written; staged beside the target and swapped in when complete
            check_output_dir(cfg.stage_only, cfg.overwrite, keep=[cfg.model_dir])
            cfg.stage_only.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{cfg.stage_only.name}.staging-", dir=cfg.stage_only.parent))
            try:
                folder = swap_in(stage(cfg, staging), cfg.stage_only, tool="scripts/push_model.py --stage-only")
            finally:
                shutil.rmtree(staging, ignore_errors=True)
            print(f"push_model: upload-ready folder written to {folder} (not uploaded)")
            return 0
        with tempfile.TemporaryDirectory(prefix="vitpain-push-") as tmp:
            url = upload(cfg, stage(cfg, Path(tmp)), HfApi())
    except (OfflineModeIsEnabled, LocalTokenNotFoundError, HfHubHTTPError, ConnectionError, TimeoutError) as error:
        print(
            f"push_model: could not upload to the Hugging Face Hub ({type(error).__name__}: {error}); nothing was "
            "uploaded. Check the network and log in with `hf auth login` or set HF_TOKEN.",
            file=sys.stderr,
        )
        return EXIT_HUB_UNREACHABLE
    except Exception as error:
        if _is_connection_error(error):
            print(
                f"push_model: the Hugging Face Hub is not reachable ({error}); nothing was uploaded.", file=sys.stderr
            )
            return EXIT_HUB_UNREACHABLE
        bad_input = (EvaluationError, OSError, ValueError, UsageError, modeling_vitpain.CheckpointMismatchError)
        if isinstance(error, bad_input):  # missing files, bad JSON, weights that do not fit, ...
            print(f"push_model: {error}", file=sys.stderr)
            return EXIT_BAD_INPUT
        raise
    print(f"push_model: uploaded to {url}")
    return 0


def _is_connection_error(error: BaseException) -> bool:
    """True when the error (or what caused it) is a network failure from the Hub client's HTTP library."""
    while error is not None:
        if type(error).__name__ in {"ConnectError", "ConnectTimeout", "ReadTimeout", "NetworkError"}:
            return True
        error = error.__cause__ or error.__context__
    return False


if __name__ == "__main__":
    sys.exit(main())
