"""Berg's Feast repo: what `feast apply` registers.

The objects are those of the use case's feature set (BERG_USE_CASE, or the only one
installed), built in the core library (berg.features.definitions), as the features
service, serving and the training pipeline build them. Offline sources live under
$BERG_FEAST_OFFLINE_ROOT, else $BERG_STATE_DIR/feast/offline.

Feast's CLI imports this file and expands feature_store.yaml from the environment,
so this file, an application edge like Feast's CLI, reads the same environment.
"""

import os

from berg.features.definitions import build_definitions
from berg.features.store_config import ensure_state_folder, offline_root_from
from berg.usecase import resolve_use_case

ensure_state_folder(os.environ)
_use_case = resolve_use_case(os.environ.get("BERG_USE_CASE") or None)
_definitions = build_definitions(_use_case.features, offline_root_from(os.environ))

# Feast's CLI collects the repo's objects from this module's attributes, whatever their names.
globals().update({f"{type(obj).__name__}_{obj.name}": obj for obj in _definitions.objects()})
