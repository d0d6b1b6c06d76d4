"""The `pain_metrics` evaluate module (see pain_metrics.py)."""
