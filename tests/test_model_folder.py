"""Model folders as users meet them: a training run's folder loads model, processor and pipeline with
`trust_remote_code=True` where the package cannot be imported, and no pipeline ever asks about remote code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from test_training import TINY_LOOP, TINY_MODEL, write_tiny_dataset

REPO = Path(__file__).resolve().parents[1]
PROMPT = "Do you wish to run the custom code"

# Runs with `python -I` (no PYTHONPATH, no script folder, no user site) from an empty folder, and with the project's
# packages blocked (they are installed in the test environment): only the folder's own code can serve.
WITHOUT_THE_PACKAGE = textwrap.dedent(
    """
    import json, sys
    for name in ("modeling_vitpain", "generation", "dataset_builder", "metrics"):
        sys.modules[name] = None  # `import name` raises ImportError
    import numpy as np
    from transformers import AutoImageProcessor, AutoModel, pipeline
    folder = sys.argv[1]
    model = AutoModel.from_pretrained(folder, trust_remote_code=True)
    processor = AutoImageProcessor.from_pretrained(folder, trust_remote_code=True)
    pain = pipeline("pain-estimation", model=folder, trust_remote_code=True)
    image = np.full((32, 32, 3), 90, np.uint8)
    neutral = np.full((32, 32, 3), 60, np.uint8)
    out = pain(image, neutral_images=neutral) if model.config.use_neutral_reference else pain(image[..., :1] / 255.0)
    print(json.dumps({"model": type(model).__module__, "processor": type(processor).__name__, "result": out}))
    """
)


def _run_isolated(code: str, folder: Path, cwd: Path, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update({"HF_HUB_OFFLINE": "1", **(env_extra or {})})
    return subprocess.run([sys.executable, "-I", "-c", code, str(folder)], cwd=cwd, env=env, capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, timeout=300)


@pytest.mark.parametrize("modality", ["rgb", "heatmap"])
def test_training_output_loads_without_the_package(tmp_path, modality):
    import train_vitpain
    from transformers import pipeline

    dataset = write_tiny_dataset(tmp_path / "data")
    folder = tmp_path / "run"
    extra = ["--use_neutral_reference"] if modality == "rgb" else []
    train_vitpain.main(["--dataset", str(dataset), *TINY_MODEL, *TINY_LOOP, "--modality", modality, *extra,
                        "--output_dir", str(folder)])
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    result = _run_isolated(WITHOUT_THE_PACKAGE, folder, empty, {"HF_HOME": str(tmp_path / "hf")})
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded["model"].startswith("transformers_modules.")  # the folder's copy of the code, not the package
    assert loaded["processor"] == "ViTPainImageProcessor"
    image = np.full((32, 32, 3), 90, np.uint8)
    pain = pipeline("pain-estimation", model=str(folder), trust_remote_code=True)
    here = pain(image, neutral_images=np.full((32, 32, 3), 60, np.uint8)) if modality == "rgb" else pain(
        image[..., :1] / 255.0
    )
    assert loaded["result"]["pspi"] == pytest.approx(here["pspi"], abs=1e-5)

    card = (folder / "README.md").read_text()
    assert f'model="{folder}"' in card and "pain3d/" not in card
    assert "Mehraban, Soroush" in card  # the paper's authors in the citation
    assert ('pain("heatmap.png")' in card) == (modality == "heatmap")


def test_pipeline_never_asks_about_remote_code(tmp_path):
    """A folder saved with plain `save_pretrained` (auto_map, no custom pipeline) and the package imported: the
    pipeline resolves only the image processor, so nothing prompts (stdin is closed here)."""
    import torch

    from modeling_vitpain import ViTPainConfig, ViTPainImageProcessor, ViTPainModel

    config = ViTPainConfig(backbone_config={"model_type": "vit", "hidden_size": 32, "num_hidden_layers": 1,
                                            "num_attention_heads": 2, "intermediate_size": 64, "image_size": 32,
                                            "patch_size": 8}, head_hidden_size=16, au_head_hidden_size=16)
    torch.manual_seed(0)
    ViTPainModel(config).save_pretrained(tmp_path / "model")
    ViTPainImageProcessor.from_model_config(config).save_pretrained(tmp_path / "model")
    code = textwrap.dedent(
        """
        import sys
        import numpy as np
        import modeling_vitpain
        from transformers import pipeline
        pain = pipeline("pain-estimation", model=sys.argv[1])
        print("pspi", pain(np.zeros((32, 32, 3), np.uint8))["pspi"])
        """
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path / "model")], env=env, cwd=tmp_path,
                            capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert PROMPT not in result.stdout + result.stderr
    assert result.stdout.strip().startswith("pspi")
