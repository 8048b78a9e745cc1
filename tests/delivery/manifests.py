"""Reading rendered manifests: pods inside workloads, label selectors, CRD schemas."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # no stubs in the lock (types-jsonschema)

__all__ = [
    "CRD_SCHEMAS",
    "PodTemplate",
    "crd_validator",
    "pod_templates",
    "selector_matches",
]

CRD_SCHEMAS = Path(__file__).resolve().parent / "crd_schemas"

Manifest = Mapping[str, Any]


@dataclass(frozen=True)
class PodTemplate:
    """A pod as some object renders it: a Deployment's template, a Job's, a Pod, a KServe component."""

    owner: str
    """``Kind/name`` (``InferenceService/berg-serving/predictor`` for a KServe component)."""
    namespace: str
    labels: Mapping[str, str]
    spec: Mapping[str, Any]
    """The PodSpec (for a KServe component: the component, which inlines a PodSpec)."""


def pod_templates(documents: list[Manifest]) -> Iterator[PodTemplate]:
    """Every pod the documents would create."""
    for doc in documents:
        kind, meta = doc["kind"], doc["metadata"]
        owner = f"{kind}/{meta['name']}"
        namespace = meta.get("namespace", "")
        if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            template = doc["spec"]["template"]
            yield PodTemplate(owner, namespace, template["metadata"].get("labels", {}), template["spec"])
        elif kind == "CronJob":
            template = doc["spec"]["jobTemplate"]["spec"]["template"]
            yield PodTemplate(owner, namespace, template["metadata"].get("labels", {}), template["spec"])
        elif kind == "Pod":
            yield PodTemplate(owner, namespace, meta.get("labels", {}), doc["spec"])
        elif kind == "InferenceService":
            for component in ("predictor", "transformer", "explainer"):
                spec = doc["spec"].get(component)
                if spec is not None:
                    yield PodTemplate(f"{owner}/{component}", namespace, spec.get("labels", {}), spec)


def selector_matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """Whether a LabelSelector (matchLabels and matchExpressions) selects ``labels``."""
    if any(labels.get(key) != value for key, value in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        present = key in labels
        if (
            (operator == "In" and labels.get(key) not in values)
            or (operator == "NotIn" and present and labels[key] in values)
            or (operator == "Exists" and not present)
            or (operator == "DoesNotExist" and present)
        ):
            return False
    return True


_VALUE_VALIDATIONS = frozenset({"allOf", "anyOf", "oneOf", "not"})
"""Keywords whose branches only constrain values the schema declares (a structural schema's rule); a
branch's ``properties`` (Strimzi's ``oneOf: [{properties: {value: {}}, required: [value]}, ...]``) names
some of them, not all the object may hold."""


def _strict(node: Any, *, close: bool = True) -> Any:
    """The API server prunes, and kubectl's strict field validation refuses, fields a structural schema
    does not declare; a validator sees the same by closing every object that lists its properties
    (outside the branches of allOf/anyOf/oneOf/not)."""
    if isinstance(node, list):
        return [_strict(item, close=close) for item in node]
    if not isinstance(node, dict):
        return node
    closed: dict[str, Any] = {}
    for key, value in node.items():
        if key == "properties" and isinstance(value, dict):  # field names, each with its schema
            closed[key] = {name: _strict(schema, close=close) for name, schema in value.items()}
        else:
            closed[key] = _strict(value, close=close and key not in _VALUE_VALIDATIONS)
    if (
        close
        and "properties" in closed
        and "additionalProperties" not in closed
        and not closed.get("x-kubernetes-preserve-unknown-fields")
    ):
        closed["additionalProperties"] = False
    return closed


@cache
def crd_validator(group: str, kind: str, version: str) -> jsonschema.Draft7Validator:
    """A validator for one custom resource kind, from the vendored CRD schema.

    Raises:
        FileNotFoundError: the chart renders a kind whose schema is not vendored (refresh.py lists them).
    """
    path = CRD_SCHEMAS / f"{group}_{kind}_{version}.json"
    schema = _strict(json.loads(path.read_text()))
    # metadata is the API server's (ObjectMeta, checked by it); the CRD schema only says "object".
    schema["properties"]["metadata"] = {"type": "object"}
    return jsonschema.Draft7Validator(schema)
