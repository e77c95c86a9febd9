"""pytest-klaudbiusz: evaluate AI-generated apps as pytest cases, track them in MLflow."""

__version__ = "0.1.0"
