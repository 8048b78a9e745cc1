"""On-demand features: computed from the request and the user's stored row, the same
code in training (Feast's historical retrieval) and serving (the online lookup)."""

from __future__ import annotations

import pandas as pd

from berg.features.schema import REQUEST_AMOUNT, REQUEST_EVENT_UNIX, USER_AS_OF

__all__ = ["transaction_context"]


def transaction_context(inputs: pd.DataFrame) -> pd.DataFrame:
    """``amount_to_user_mean_7d``, ``hour_of_day`` and ``seconds_since_previous_transaction``.

    ``inputs`` holds the request fields (``amount``, ``event_unix``) and the user's
    ``amount_mean_7d`` and ``last_transaction_unix``; a user without history has
    nulls there and gets nulls (never a division by zero or a made-up zero).
    """
    amount = pd.to_numeric(inputs[REQUEST_AMOUNT], errors="coerce").astype("float64")
    event_unix = pd.to_numeric(inputs[REQUEST_EVENT_UNIX], errors="coerce").astype("float64")
    mean_7d = pd.to_numeric(inputs["amount_mean_7d"], errors="coerce").astype("float64")
    last_unix = pd.to_numeric(inputs[USER_AS_OF], errors="coerce").astype("float64")
    out = pd.DataFrame(index=inputs.index)
    out["amount_to_user_mean_7d"] = (amount / mean_7d.where(mean_7d > 0)).astype("float64")
    out["hour_of_day"] = ((event_unix // 3600) % 24).astype("int64")
    out["seconds_since_previous_transaction"] = (event_unix - last_unix).astype("float64")
    return out
