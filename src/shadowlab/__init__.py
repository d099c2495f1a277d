"""shadowlab: self-hosted, SageMaker-compatible shadow testing for machine-learning models."""

__version__ = "0.1.0"

__all__ = ["__version__"]
