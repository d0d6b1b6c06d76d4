"""3DPain datasets: the column contract (`pain_features`) and readers/builders for generated and official layouts."""

from .features import COLUMNS, HEATMAP_UNITS_PER_MM, SPLITS, pain_features

__all__ = ["COLUMNS", "HEATMAP_UNITS_PER_MM", "SPLITS", "pain_features"]
