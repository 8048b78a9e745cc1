"""Serving's feature assembly for the fraud case, as the serving service builds it from the use case."""

from __future__ import annotations

from berg_fraud.features import fraud_features
from berg_serving.features import FeatureAssembler

__all__ = ["ASSEMBLER", "ONLINE_FEATURE_REFS", "SERVABLE_FEATURES"]

ASSEMBLER = FeatureAssembler(fraud_features())
ONLINE_FEATURE_REFS = ASSEMBLER.online_refs
SERVABLE_FEATURES = ASSEMBLER.servable
