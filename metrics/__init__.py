"""Pain metrics. `metrics/pain_metrics/pain_metrics.py` is an `evaluate` module (`evaluate.load("metrics/pain_metrics")`
copies and imports it alone); the package lets the project import the same functions directly."""
