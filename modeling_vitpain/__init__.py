"""ViTPain as a `transformers` model.

Importing this package registers `ViTPainConfig` / `ViTPainModel` / `ViTPainImageProcessor` with `AutoConfig`,
`AutoModel` and `AutoImageProcessor`, the `pain-estimation` pipeline, and marks the classes for remote code so that
`save_pretrained` writes `auto_map` and copies the code: a saved folder then loads with
`AutoModel.from_pretrained(folder, trust_remote_code=True)` where this package is not installed.

With the package imported no folder's code ever runs: the Auto classes pick the registered classes, and a config read
here drops the folder's `custom_pipelines` entry for the task this package registered, so
`pipeline("pain-estimation", model=folder)` needs no `trust_remote_code` (and with it still runs this package's code).

Nothing here imports `generation` or `dataset_builder`: the model side travels alone.
"""

from transformers import AutoConfig, AutoImageProcessor, AutoModel
from transformers.pipelines import PIPELINE_REGISTRY

from .configuration_vitpain import DEFAULT_AU_NAMES, DEFAULT_PAIN_THRESHOLDS, PIPELINE_TASK, ViTPainConfig
from .image_processing_vitpain import ViTPainImageProcessor
from .modeling_vitpain import BACKBONES, CheckpointMismatchError, ViTPainModel, ViTPainOutput, ViTPainPreTrainedModel
from .pipeline_vitpain import PainEstimationPipeline

AutoConfig.register(ViTPainConfig.model_type, ViTPainConfig, exist_ok=True)
AutoModel.register(ViTPainConfig, ViTPainModel, exist_ok=True)
AutoImageProcessor.register(ViTPainConfig, slow_image_processor_class=ViTPainImageProcessor, exist_ok=True)
if PIPELINE_TASK not in PIPELINE_REGISTRY.get_supported_tasks():
    PIPELINE_REGISTRY.register_pipeline(
        PIPELINE_TASK, pipeline_class=PainEstimationPipeline, pt_model=AutoModel, type="image"
    )


def save_model_folder(model, image_processor, folder) -> None:
    """Save `model` and `image_processor` through the `pain-estimation` pipeline: weights, config (`auto_map` and
    `custom_pipelines`), processor and all remote code, so the folder loads the model, the processor and the
    pipeline with `trust_remote_code=True` where this package is not installed (and without it where it is)."""
    from transformers import pipeline

    pipeline(PIPELINE_TASK, model=model, image_processor=image_processor).save_pretrained(str(folder))


ViTPainConfig.register_for_auto_class()
ViTPainModel.register_for_auto_class("AutoModel")
ViTPainImageProcessor.register_for_auto_class("AutoImageProcessor")

__all__ = [
    "BACKBONES",
    "CheckpointMismatchError",
    "DEFAULT_AU_NAMES",
    "DEFAULT_PAIN_THRESHOLDS",
    "PIPELINE_TASK",
    "PainEstimationPipeline",
    "ViTPainConfig",
    "ViTPainImageProcessor",
    "ViTPainModel",
    "ViTPainOutput",
    "ViTPainPreTrainedModel",
    "save_model_folder",
]
