"""ResNets in PyTorch: the architectures, the zoo of names, weights loading and model statistics.

Importing this package imports torch; ``resdeploy`` itself stays light and loads it on demand.
"""

from __future__ import annotations

from resdeploy.models.zoo import MODELS, ModelSpec, create_model, list_models, model_from_manifest

__all__ = ["MODELS", "ModelSpec", "create_model", "list_models", "model_from_manifest"]
