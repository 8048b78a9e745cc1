"""What the cluster tier reads back from the API server about an installed release: its pods' references, its
NetworkPolicies' coverage, its ServiceAccounts' rights. Pure functions of the objects, apart from ``ControlPlane``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["helm_merge", "label_selector", "missing_references", "pod_references"]


def helm_merge(defaults: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Values as helm merges a values file over the chart's: maps recursively, anything else replaced, and a
    null removing the key."""
    merged = dict(defaults)
    for key, value in overrides.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = helm_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def label_selector(selector: Mapping[str, Any]) -> str:
    """A LabelSelector in kubectl's ``-l`` syntax (the API server evaluates it); empty selects everything."""
    terms = [f"{key}={value}" for key, value in sorted((selector.get("matchLabels") or {}).items())]
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values") or []
        if operator == "In":
            terms.append(f"{key} in ({','.join(values)})")
        elif operator == "NotIn":
            terms.append(f"{key} notin ({','.join(values)})")
        elif operator == "Exists":
            terms.append(key)
        elif operator == "DoesNotExist":
            terms.append(f"!{key}")
        else:
            raise ValueError(f"unknown label selector operator {operator!r}")
    return ",".join(terms)


def pod_references(pod: Mapping[str, Any]) -> set[tuple[str, str, str | None]]:
    """Every (kind, name, key) a pod needs to exist: ConfigMaps and Secrets by volume, envFrom and env key
    (key None for a whole object), the image pull Secrets, the ServiceAccount and claimed volumes."""
    spec = pod["spec"]
    references: set[tuple[str, str, str | None]] = {("ServiceAccount", spec.get("serviceAccountName", "default"), None)}
    references |= {("Secret", secret["name"], None) for secret in spec.get("imagePullSecrets") or []}
    for volume in spec.get("volumes") or []:
        if "configMap" in volume and not volume["configMap"].get("optional"):
            references.add(("ConfigMap", volume["configMap"]["name"], None))
        if "secret" in volume and not volume["secret"].get("optional"):
            references.add(("Secret", volume["secret"]["secretName"], None))
        if "persistentVolumeClaim" in volume:
            references.add(("PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"], None))
    for container in [*(spec.get("initContainers") or []), *spec["containers"]]:
        for source in container.get("envFrom") or []:
            for kind, field in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
                if field in source and not source[field].get("optional"):
                    references.add((kind, source[field]["name"], None))
        for variable in container.get("env") or []:
            value_from = variable.get("valueFrom") or {}
            for kind, field in (("ConfigMap", "configMapKeyRef"), ("Secret", "secretKeyRef")):
                if field in value_from and not value_from[field].get("optional"):
                    references.add((kind, value_from[field]["name"], value_from[field]["key"]))
    return references


def missing_references(
    references: Iterable[tuple[str, str, str | None]], objects: Mapping[tuple[str, str], Mapping[str, Any]]
) -> list[str]:
    """The references that name an object (or a key of one) not in ``objects`` (keyed by kind and name)."""
    missing: list[str] = []
    for kind, name, key in sorted(references, key=lambda ref: (ref[0], ref[1], ref[2] or "")):
        found = objects.get((kind, name))
        if found is None:
            missing.append(f"{kind} {name}")
        elif key is not None and key not in {**(found.get("data") or {}), **(found.get("stringData") or {})}:
            missing.append(f"{kind} {name} has no key {key}")
    return missing
