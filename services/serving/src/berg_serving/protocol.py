"""The wire formats of serving, V1 and V2 (Open Inference Protocol), in one place.

Three conversations:

1. **Client to transformer (or fused server)**: events of the use case's scored contract in
   (:mod:`berg_serving.scoring_request`), one result per event out. V1:
   ``{"predictions": [{"prediction_id", "scored_event_id", "transaction_event_id", "score",
   "decision", "threshold", "default_features_used", "model_version"}], "model_name",
   "model_version"}``. V2: output tensors of shape ``[n]``: ``prediction_id``,
   ``scored_event_id``, ``transaction_event_id`` and ``decision`` (BYTES), ``score`` and
   ``threshold`` (FP64), ``default_features_used`` (BOOL); the response's ``model_version`` and
   its ``parameters["model_version"]`` (KServe's REST client drops the former) name the version.
   ``scored_event_id`` is the scored event's ``event_id`` whatever the use case (the prediction
   log's ``PredictionV3.scored_event_id``). ``transaction_event_id`` is a deprecated duplicate
   of it (:data:`DEPRECATED_EVENT_ID_ALIAS`), kept for clients written before the generic name.
2. **Transformer to predictor**: named feature columns, so the predictor takes the ones its
   current model reads in that model's order (a hot swap may change either). V1:
   ``{"instances": [{"<feature>": value or null}, ...]}``; V2: one FP32 tensor per feature,
   shape ``[n]``, NaN for missing (binary on REST, raw on gRPC: JSON has no NaN).
3. **Predictor to transformer**: V1 ``{"predictions": [{"score", "decision"}], "model_name",
   "model_version", "threshold"}``; V2 ``score`` (FP64), ``decision`` (BYTES), ``threshold`` (FP64).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any, cast

import numpy as np
from kserve import InferInput, InferOutput, InferRequest, InferResponse

from berg.contracts.predictions import Decision
from berg_serving.predictions import ScoredEvent, Scores
from berg_serving.scoring_request import NUMERIC_DATATYPES, RequestError, check_json_numbers

__all__ = [
    "DEPRECATED_EVENT_ID_ALIAS",
    "MODEL_VERSION_PARAMETER",
    "PREDICTOR_OUTPUTS",
    "SCORED_EVENT_ID",
    "SCORING_OUTPUTS",
    "PredictorResponseError",
    "feature_columns_v1",
    "feature_columns_v2",
    "feature_request_v1",
    "feature_request_v2",
    "read_scores_v1",
    "read_scores_v2",
    "scored_response_v1",
    "scored_response_v2",
    "scores_response_v1",
    "scores_response_v2",
    "tensor_metadata",
]

MODEL_VERSION_PARAMETER = "model_version"

SCORED_EVENT_ID = "scored_event_id"
"""The response field (V1) and output tensor (V2) that carries the scored event's ``event_id``."""

# Deprecated: the older name of SCORED_EVENT_ID, sent alongside it with the same value so that
# clients written before the generic name keep working. It will be dropped in the next response version.
DEPRECATED_EVENT_ID_ALIAS = "transaction_event_id"

SCORING_OUTPUTS: Mapping[str, str] = {
    "prediction_id": "BYTES",
    SCORED_EVENT_ID: "BYTES",
    DEPRECATED_EVENT_ID_ALIAS: "BYTES",
    "score": "FP64",
    "decision": "BYTES",
    "threshold": "FP64",
    "default_features_used": "BOOL",
}
"""The V2 outputs of a scoring response and their datatypes."""

PREDICTOR_OUTPUTS: Mapping[str, str] = {"score": "FP64", "decision": "BYTES", "threshold": "FP64"}
_DECISIONS: frozenset[str] = frozenset({"approve", "review", "decline"})


def tensor_metadata(tensors: Mapping[str, str]) -> list[dict[str, Any]]:
    """V2 model metadata for named tensors of shape ``[-1]`` (one value per event)."""
    return [{"name": name, "datatype": datatype, "shape": [-1]} for name, datatype in tensors.items()]


def _text(values: Sequence[str]) -> np.ndarray:
    return np.array([value.encode("utf-8") for value in values], dtype=np.object_)


def _response(
    request: InferRequest | None, model_name: str, version: str, outputs: Mapping[str, np.ndarray]
) -> InferResponse:
    return InferResponse(
        response_id=(request.id if request is not None and request.id else str(uuid.uuid4())),
        model_name=model_name,
        model_version=version,
        infer_outputs=[_output(name, array) for name, array in outputs.items()],
        parameters={MODEL_VERSION_PARAMETER: version},
        use_binary_outputs=bool(request is not None and request.use_binary_outputs),
        requested_outputs=request.request_outputs if request is not None else None,
    )


def _output(name: str, array: np.ndarray) -> InferOutput:
    # Held as raw bytes: KServe's gRPC encoder tests an array's truth value (an error for more than one
    # element), and its REST encoder turns raw bytes into JSON data when the client asked for JSON.
    output = InferOutput(name=name, shape=list(array.shape), datatype=_datatype(array))
    output.set_data_from_numpy(array, binary_data=True)
    return output


def _datatype(array: np.ndarray) -> str:
    if array.dtype == np.object_:
        return "BYTES"
    if array.dtype == np.bool_:
        return "BOOL"
    return "FP32" if array.dtype == np.float32 else "FP64"


# 1. Client <-> transformer or fused server


def scored_response_v1(scored: Sequence[ScoredEvent], model_name: str) -> dict[str, Any]:
    """The V1 response to a scoring request."""
    version = scored[0].model_version if scored else ""
    return {
        "predictions": [
            {
                "prediction_id": str(item.prediction_id),
                SCORED_EVENT_ID: str(item.event_id),
                DEPRECATED_EVENT_ID_ALIAS: str(item.event_id),
                "score": item.score,
                "decision": item.decision,
                "threshold": item.threshold,
                "default_features_used": item.default_features_used,
                "model_version": item.model_version,
            }
            for item in scored
        ],
        "model_name": model_name,
        "model_version": version,
    }


def scored_response_v2(scored: Sequence[ScoredEvent], model_name: str, request: InferRequest | None) -> InferResponse:
    """The V2 response to a scoring request (REST or gRPC)."""
    version = scored[0].model_version if scored else ""
    event_ids = [str(item.event_id) for item in scored]
    return _response(
        request,
        model_name,
        version,
        {
            "prediction_id": _text([str(item.prediction_id) for item in scored]),
            SCORED_EVENT_ID: _text(event_ids),
            DEPRECATED_EVENT_ID_ALIAS: _text(event_ids),
            "score": np.array([item.score for item in scored], dtype=np.float64),
            "decision": _text([item.decision for item in scored]),
            "threshold": np.array([item.threshold for item in scored], dtype=np.float64),
            "default_features_used": np.array([item.default_features_used for item in scored], dtype=np.bool_),
        },
    )


# 2. Transformer -> predictor


def feature_request_v1(columns: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """The V1 body the transformer sends: named features per event, null for missing."""
    names = list(columns)
    rows = np.column_stack([columns[name] for name in names]).tolist()
    return {
        "instances": [
            {name: (None if value != value else value) for name, value in zip(names, row, strict=True)} for row in rows
        ]
    }


def feature_request_v2(columns: Mapping[str, np.ndarray], model_name: str, request_id: str) -> InferRequest:
    """The V2 request the transformer sends: one FP32 tensor per feature, NaN for missing."""
    inputs = []
    for name, column in columns.items():
        tensor = InferInput(name=name, shape=[len(column)], datatype="FP32")
        tensor.set_data_from_numpy(column.astype(np.float32), binary_data=True)
        inputs.append(tensor)
    return InferRequest(model_name=model_name, infer_inputs=inputs, request_id=request_id)


def _check_rows(count: int, max_batch: int) -> None:
    if count == 0:
        raise RequestError("no rows: send the features of at least one event")
    if count > max_batch:
        raise RequestError(f"{count} rows; at most {max_batch} per request")


def feature_columns_v1(body: object, *, max_batch: int) -> dict[str, np.ndarray]:
    """Named feature columns from a V1 predictor request (``null`` is missing).

    Raises:
        RequestError: not ``{"instances": [{name: number or null}]}``, or rows with different names.
    """
    if not isinstance(body, dict) or set(body) != {"instances"} or not isinstance(body["instances"], list):
        raise RequestError('a predictor request is {"instances": [{"<feature>": <number or null>, ...}, ...]}')
    instances = body["instances"]
    _check_rows(len(instances), max_batch)
    first = instances[0]
    if not isinstance(first, dict) or not first:
        raise RequestError("instances[0] must be a JSON object of feature names to numbers (or null)")
    names = list(first)
    columns = {name: np.empty(len(instances), dtype=np.float64) for name in names}
    for index, instance in enumerate(instances):
        if not isinstance(instance, dict) or set(instance) != set(names):
            raise RequestError(f"instances[{index}] must name the same features as instances[0]")
        for name in names:
            value = instance[name]
            if value is None:
                columns[name][index] = np.nan
            elif isinstance(value, int | float) and not isinstance(value, bool):
                columns[name][index] = value
            else:
                raise RequestError(f"instances[{index}].{name} must be a number or null, got {type(value).__name__}")
    return columns


def feature_columns_v2(inputs: Sequence[InferInput], *, max_batch: int) -> dict[str, np.ndarray]:
    """Named feature columns from a V2 predictor request (one numeric tensor per feature, NaN missing).

    Raises:
        RequestError: a non-numeric tensor or JSON value, tensors of different lengths, or a repeated name.
    """
    columns: dict[str, np.ndarray] = {}
    rows: int | None = None
    for tensor in inputs:
        if tensor.name in columns:
            raise RequestError(f"input tensor {tensor.name!r} given more than once")
        if tensor.datatype not in NUMERIC_DATATYPES:
            raise RequestError(f"input tensor {tensor.name!r} must be numeric (FP32), got {tensor.datatype}")
        shape = list(tensor.shape)
        if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)):
            raise RequestError(f"input tensor {tensor.name!r} has shape {shape}; expected [n]")
        if rows is not None and shape[0] != rows:
            raise RequestError(f"input tensor {tensor.name!r} holds {shape[0]} rows, the others {rows}")
        rows = shape[0]
        _check_rows(rows, max_batch)
        check_json_numbers(tensor)
        try:
            columns[tensor.name] = np.asarray(tensor.as_numpy(), dtype=np.float64).reshape(-1)
        except OverflowError:
            raise RequestError(f"input tensor {tensor.name!r}: a value does not fit a 64-bit float") from None
        except (ValueError, TypeError) as error:
            raise RequestError(f"input tensor {tensor.name!r}: data does not match shape {shape}: {error}") from None
        if len(columns[tensor.name]) != rows:
            raise RequestError(f"input tensor {tensor.name!r}: shape {shape} but {len(columns[tensor.name])} values")
    if not columns:
        raise RequestError("no input tensors: send one FP32 tensor per feature")
    return columns


# 3. Predictor -> transformer


def scores_response_v1(scores: Scores, model_name: str) -> dict[str, Any]:
    """The predictor's V1 response."""
    return {
        "predictions": [
            {"score": score, "decision": decision}
            for score, decision in zip(scores.scores, scores.decisions, strict=True)
        ],
        "model_name": model_name,
        "model_version": scores.model_version,
        "threshold": scores.threshold,
    }


def scores_response_v2(scores: Scores, model_name: str, request: InferRequest | None) -> InferResponse:
    """The predictor's V2 response (REST or gRPC)."""
    count = len(scores.scores)
    return _response(
        request,
        model_name,
        scores.model_version,
        {
            "score": np.array(scores.scores, dtype=np.float64),
            "decision": _text(scores.decisions),
            "threshold": np.full(count, scores.threshold, dtype=np.float64),
        },
    )


class PredictorResponseError(ValueError):
    """The predictor answered something that is not a predictor response."""


def _decisions(values: Sequence[object]) -> list[Decision]:
    decoded = [value.decode("utf-8") if isinstance(value, bytes) else value for value in values]
    unknown = {str(value) for value in decoded if value not in _DECISIONS}
    if unknown:
        raise PredictorResponseError(f"unknown decisions {sorted(unknown)}")
    return [cast(Decision, value) for value in decoded]


def read_scores_v1(body: object, rows: int) -> Scores:
    """Scores from the predictor's V1 response to ``rows`` events.

    Raises:
        PredictorResponseError: the body is not a predictor response for that many rows.
    """
    if not isinstance(body, dict) or not isinstance(body.get("predictions"), list):
        raise PredictorResponseError(f"not a predictor response: {str(body)[:200]}")
    predictions = body["predictions"]
    if len(predictions) != rows:
        raise PredictorResponseError(f"{len(predictions)} predictions for {rows} rows")
    try:
        return Scores(
            model_version=str(body["model_version"]),
            threshold=float(body["threshold"]),
            scores=[float(item["score"]) for item in predictions],
            decisions=_decisions([item["decision"] for item in predictions]),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise PredictorResponseError(f"not a predictor response for {rows} rows: {error!r}") from None


def read_scores_v2(response: InferResponse, rows: int) -> Scores:
    """Scores from the predictor's V2 response (REST or gRPC) to ``rows`` transactions.

    Raises:
        PredictorResponseError: the response lacks an output, a version, or has the wrong length.
    """
    try:
        outputs = {output.name: output.as_numpy().reshape(-1) for output in response.outputs}
        version = (response.parameters or {}).get(MODEL_VERSION_PARAMETER) or response.model_version
        if hasattr(version, "string_param"):  # a gRPC InferParameter
            version = version.string_param
        scores = [float(value) for value in outputs["score"].tolist()]
        thresholds = outputs["threshold"].tolist()
        if len(scores) != rows or len(thresholds) != rows or not version:
            raise PredictorResponseError(f"{len(scores)} scores for {rows} rows, model version {version!r}")
        return Scores(
            model_version=str(version),
            threshold=float(thresholds[0]),
            scores=scores,
            decisions=_decisions(outputs["decision"].tolist()),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise PredictorResponseError(f"not a predictor response for {rows} rows: {error!r}") from None
