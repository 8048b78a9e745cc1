"""A ``feature_store.yaml`` profile read into Feast's :class:`RepoConfig`, its ``${VARS}`` from a given mapping.

Feast's own loader (``feast.repo_config.load_repo_config``) expands the variables
from ``os.environ`` (``os.path.expandvars`` over the text); a process that opens two
stores, or a test, would have to change its environment to choose their values.
Here the yaml is parsed first and each string value then gets ``$NAME`` and
``${NAME}`` replaced from the mapping, so a value holding yaml syntax (a password
with ``#`` or ``: ``) stays one string, and a variable the mapping lacks is an error
that names it instead of a literal ``${NAME}`` reaching Feast.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import yaml
from feast.repo_config import FeastConfigError, RepoConfig
from pydantic import ValidationError

from berg.features.store_config import FeatureStoreConfig

__all__ = ["load_profile", "substitute_variables"]

_VARIABLE = re.compile(r"\$(\w+|\{[^}]*\})")
"""What ``os.path.expandvars`` replaces: ``$NAME`` and ``${NAME}``."""


def substitute_variables(value: Any, variables: Mapping[str, str], missing: set[str]) -> Any:
    """``value`` (parsed yaml) with each string's variables replaced; names not in ``variables`` go to ``missing``."""
    if isinstance(value, str):

        def replace(match: re.Match[str]) -> str:
            name = match.group(1).removeprefix("{").removesuffix("}")
            if name not in variables:
                missing.add(name)
                return match.group(0)
            return variables[name]

        return _VARIABLE.sub(replace, value)
    if isinstance(value, dict):
        return {key: substitute_variables(item, variables, missing) for key, item in value.items()}
    if isinstance(value, list):
        return [substitute_variables(item, variables, missing) for item in value]
    return value


def load_profile(config: FeatureStoreConfig) -> RepoConfig:
    """The profile of ``config`` as Feast's config, with ``repo_path`` set as Feast's loader sets it.

    Raises:
        ValueError: the profile names a variable ``config`` does not give.
        FeastConfigError: the profile is not a valid Feast config (as from Feast's loader).
    """
    path = config.profile_file
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    missing: set[str] = set()
    expanded = substitute_variables(raw, config.variables, missing)
    if missing:
        names = ", ".join(sorted(missing))
        raise ValueError(f"the feature store profile {path} names {names}: set it (the settings give none)")
    try:
        repo_config = RepoConfig(**expanded)
    except ValidationError as error:
        raise FeastConfigError(error, path) from None  # type: ignore[no-untyped-call]  # Feast leaves it unannotated
    repo_config.repo_path = config.repo
    return repo_config
