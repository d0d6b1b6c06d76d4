"""Dataset and model card templates (jinja2), shipped as package data."""
