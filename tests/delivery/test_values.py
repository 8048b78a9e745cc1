"""values.yaml and values.schema.json: every value documented, the schema strict and in step with the values."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # no stubs in the lock (types-jsonschema)
import pytest
import yaml

from tests.delivery.tools import CHART, CI_VALUES

pytestmark = pytest.mark.unit

VALUES_TEXT = (CHART / "values.yaml").read_text()
VALUES: dict[str, Any] = yaml.safe_load(VALUES_TEXT)
SCHEMA: dict[str, Any] = json.loads((CHART / "values.schema.json").read_text())
PARAM = re.compile(r"^\s*## @param (\S+) (\S.*)$", re.MULTILINE)


def documented() -> dict[str, str]:
    return dict(PARAM.findall(VALUES_TEXT))


def leaves(values: Mapping[str, Any], schema: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    """Paths of the values the schema treats as one value (no `properties` of their own)."""
    for key, value in values.items():
        path = f"{prefix}{key}"
        node = schema["properties"][key]
        if "properties" in node:
            assert isinstance(value, dict), f"{path}: the schema says object"
            yield from leaves(value, node, f"{path}.")
        else:
            yield path


def schema_objects(node: Mapping[str, Any], path: str = "") -> Iterator[tuple[str, Mapping[str, Any]]]:
    if isinstance(node, dict):
        if node.get("type") == "object":
            yield path or "<root>", node
        for key, child in node.items():
            if key == "properties":
                for name, prop in child.items():
                    yield from schema_objects(prop, f"{path}.{name}" if path else name)
            elif key in ("items", "additionalProperties"):
                yield from schema_objects(child, f"{path}[{key}]")


def test_yaml_language_server_line() -> None:
    assert VALUES_TEXT.startswith("# yaml-language-server: $schema=values.schema.json\n")


def test_every_value_is_documented() -> None:
    params = documented()
    paths = set(leaves(VALUES, SCHEMA))
    assert sorted(paths - set(params)) == [], "values without a `## @param <path> <description>` line"
    assert sorted(set(params) - paths) == [], "`## @param` lines naming no value"
    for path, description in params.items():
        assert len(description.split()) >= 2, f"{path}: say what it is for"


def test_the_schema_is_strict_and_described() -> None:
    objects = list(schema_objects(SCHEMA))
    assert len(objects) > 40
    for path, node in objects:
        if "properties" in node:
            assert node.get("additionalProperties") is False, f"{path}: additionalProperties must be false"
            required = set(node.get("required", []))
            if "[" in path:  # list items (tolerations, serving clients) may leave optional fields out
                assert required <= set(node["properties"]), f"{path}: requires unknown keys"
            else:
                assert required == set(node["properties"]), f"{path}: every key of a values object is required"
        else:
            assert isinstance(node.get("additionalProperties"), dict), f"{path}: a free-form map needs a value schema"
        assert path.endswith("]") or node.get("description"), f"{path}: no description"
    for path in leaves(VALUES, SCHEMA):
        node = SCHEMA
        for key in path.split("."):
            node = node["properties"][key]
        assert node.get("description"), f"{path}: no description in the schema"


def test_defaults_and_scenarios_validate() -> None:
    validator = jsonschema.Draft7Validator(SCHEMA)
    assert not [error.message for error in validator.iter_errors(VALUES)]
    for path in CI_VALUES:
        merged = _merge(VALUES, yaml.safe_load(path.read_text()) or {})
        errors = [f"{list(error.absolute_path)}: {error.message}" for error in validator.iter_errors(merged)]
        assert not errors, f"{path.name}: {errors}"


def test_the_schema_refuses_an_unknown_key() -> None:
    validator = jsonschema.Draft7Validator(SCHEMA)
    bad = _merge(VALUES, {"serving": {"canaryTrafficPercent": 10}})
    assert any("canaryTrafficPercent" in error.message for error in validator.iter_errors(bad))


def _merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if value is None:  # Helm's way to drop a default's key
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(base.get(key), dict) and value:
            merged[key] = _merge(base[key], value)
        else:
            merged[key] = value
    return merged
