"""Rows made by a `PainTransform` (attached per split with `set_transform`) -> the keyword arguments ViTPain takes.

    train.set_transform(PainTransform.from_image_processor(processor, train=True, view_names=...))
    validation.set_transform(PainTransform.from_image_processor(processor, view_names=...))
    collator = PainCollator.for_model(model.config, processor)
    Trainer(..., data_collator=collator)

`pixel_values` is the RGB image or the heatmap in units of `heatmap_scale_mm`; `teacher_modality` adds
`teacher_pixel_values` (and `teacher_neutral_pixel_values`) for a distillation teacher of the other modality. The
scale is the model's image processor's (`for_model` reads it there) and has no default here: a heatmap side without
one is an error. The data side imports nothing from the model side: the scales are plain numbers.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch

STACKED_KEYS = ("pixel_values", "neutral_pixel_values", "pspi_labels", "action_unit_labels")


class PainCollator:
    """A list of transformed rows (or one transformed batch) -> model inputs with labels."""

    def __init__(
        self,
        modality: str = "rgb",
        *,
        use_neutral_reference: bool = False,
        heatmap_scale_mm: float | None = None,
        teacher_modality: str | None = None,
        teacher_neutral_reference: bool = False,
        teacher_heatmap_scale_mm: float | None = None,
    ):
        for name, value in (("modality", modality), ("teacher_modality", teacher_modality)):
            if value not in ("rgb", "heatmap", None) or (name == "modality" and value is None):
                raise ValueError(f"{name}={value!r}: use 'rgb' or 'heatmap'.")
        self.modality = modality
        self.use_neutral_reference = use_neutral_reference
        self.heatmap_scale_mm = self._scale("heatmap_scale_mm", heatmap_scale_mm, modality)
        self.teacher_modality = teacher_modality
        self.teacher_neutral_reference = teacher_neutral_reference
        self.teacher_heatmap_scale_mm = self._scale("teacher_heatmap_scale_mm", teacher_heatmap_scale_mm,
                                                    teacher_modality)

    @classmethod
    def for_model(cls, config, image_processor, *, teacher_config=None, teacher_processor=None) -> "PainCollator":
        """The inputs a model takes: modality and neutral reference from its `config` (`input_modality`,
        `use_neutral_reference`), the heatmap scale from its `image_processor` (`heatmap_scale_mm`); the same from
        `teacher_config` / `teacher_processor` for a distillation teacher."""
        teacher = {}
        if teacher_config is not None:
            teacher = dict(teacher_modality=teacher_config.input_modality,
                           teacher_neutral_reference=teacher_config.use_neutral_reference,
                           teacher_heatmap_scale_mm=getattr(teacher_processor, "heatmap_scale_mm", None))
        return cls(config.input_modality, use_neutral_reference=config.use_neutral_reference,
                   heatmap_scale_mm=getattr(image_processor, "heatmap_scale_mm", None), **teacher)

    @staticmethod
    def _scale(name: str, value: float | None, modality: str | None) -> float | None:
        """Millimetres that map to 1.0 for a heatmap input; required for a heatmap side, unused otherwise."""
        if modality != "heatmap":
            return None if value is None else float(value)
        if value is None or not float(value) > 0:
            raise ValueError(f"a heatmap input needs {name} > 0 (got {value}): pass the model's image processor's "
                             "heatmap_scale_mm, or build the collator with PainCollator.for_model(config, processor)")
        return float(value)

    @staticmethod
    def stack(rows: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        """Per-row tensors -> batch tensors; rows without a heatmap get a zero map when others have one."""
        batch = {key: torch.stack([row[key] for row in rows]) for key in STACKED_KEYS}
        if any("heatmap" in row for row in rows):
            shape = next(row["heatmap"] for row in rows if "heatmap" in row).shape
            batch["heatmap"] = torch.stack([row["heatmap"] if "heatmap" in row else torch.zeros(shape) for row in rows])
        return batch

    def _pixels(self, batch: Mapping[str, torch.Tensor], modality: str, scale_mm: float) -> torch.Tensor:
        if modality == "rgb":
            return batch["pixel_values"]
        if "heatmap" not in batch:
            raise ValueError("A heatmap model needs the `heatmap` column, but no row of this batch has one.")
        return batch["heatmap"] / scale_mm

    @staticmethod
    def _neutral(batch: Mapping[str, torch.Tensor], modality: str) -> torch.Tensor:
        # A heatmap is already a difference from the neutral face: its neutral reference is the zero map.
        return batch["neutral_pixel_values"] if modality == "rgb" else torch.zeros_like(batch["heatmap"])

    def __call__(self, rows: Sequence[Mapping[str, Any]] | Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        batch = rows if isinstance(rows, Mapping) else self.stack(rows)
        inputs = {
            "pixel_values": self._pixels(batch, self.modality, self.heatmap_scale_mm),
            "pspi_labels": batch["pspi_labels"],
            "action_unit_labels": batch["action_unit_labels"],
        }
        if self.use_neutral_reference:
            inputs["neutral_pixel_values"] = self._neutral(batch, self.modality)
        if self.teacher_modality is not None:
            inputs["teacher_pixel_values"] = self._pixels(batch, self.teacher_modality, self.teacher_heatmap_scale_mm)
            if self.teacher_neutral_reference:
                inputs["teacher_neutral_pixel_values"] = self._neutral(batch, self.teacher_modality)
        return inputs


__all__ = ["PainCollator"]
