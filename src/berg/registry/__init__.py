"""The model registry: immutable, versioned models and atomic aliases, on the local disk or object storage.

Layout under the registry root (a local folder, the embedded default
``<BERG_STATE_DIR>/registry``, or any fsspec URI such as ``s3://bucket/registry``)::

    <root>/<model>/versions/<version>/model/model.bst      the XGBoost model (binary/UBJ), alone in its folder
    <root>/<model>/versions/<version>/files/<name>         extra files: evaluation report, ...
    <root>/<model>/versions/<version>/metadata.json        ModelVersion; written last: the commit marker
    <root>/<model>/claims/<version>                        reservation of a version id (exclusive create)
    <root>/<model>/aliases/<alias>                         AliasMove JSON {version, moved_at, previous, reason, action}
    <root>/<model>/alias-history/<alias>/<00000001>.json   one file per move (exclusive create), never rewritten
    <root>/<model>/rollout/<version>/<00000001>.json       one file per rollout step of a challenger (RolloutEvent)
    <root>/.staging/<random>/                              local disk only: versions being written

- A KServe ``storageUri`` points at ``versions/<version>/model/``
  (:meth:`ModelRegistry.uri`). KServe's xgbserver refuses a folder with more than
  one ``.bst``, ``.json`` or ``.ubj`` file, so ``metadata.json`` and the extra
  files live beside that folder, not in it.
- Every file's size and sha256 are recorded in ``metadata.json`` at registration, and
  :meth:`ModelRegistry.read_model_file` (:meth:`ModelRegistry.read_file`) checks them on
  every read: a file replaced under a registered version raises :class:`IntegrityError`
  instead of being loaded (:mod:`berg.registry.integrity`).
- Versions are immutable. A version exists for readers only once its
  ``metadata.json`` does: on the local disk the version is written to a staging
  folder and renamed into place in one step; on object storage every file is
  written first and ``metadata.json`` last. A half-written version is invisible.
- Version ids are ``v0001``, ``v0002``... (:mod:`berg.registry.versions`); a writer
  reserves its id by creating ``claims/<version>`` exclusively, so concurrent
  writers never share one.
- Alias moves are atomic for readers: the pointer is replaced in one step (a temp
  file and ``os.replace`` locally, one PUT on object storage). Each move first
  takes the next history slot by exclusive create, so concurrent moves never
  overwrite each other's history; the history is the source of truth and the
  pointer its copy.

Example:
    >>> registry = ModelRegistry(".berg/registry")
    >>> version = registry.register("my-model", Path("out/model"), metadata)
    >>> registry.promote("my-model", version.version, reason="beats the champion")
    >>> registry.resolve("my-model", "production").version
    'v0001'
"""

from berg.registry.aliases import AliasMove
from berg.registry.errors import IntegrityError, RegistryError
from berg.registry.layout import METADATA_FILE, MODEL_FILE, MODEL_PATH
from berg.registry.metadata import Lineage, ModelVersion, StoredFile, VersionMetadata
from berg.registry.registry import Artifacts, ModelRegistry
from berg.registry.rollout import RolloutAction, RolloutEvent, RolloutStageName, stage_of

__all__ = [
    "METADATA_FILE",
    "MODEL_FILE",
    "MODEL_PATH",
    "AliasMove",
    "Artifacts",
    "IntegrityError",
    "Lineage",
    "ModelRegistry",
    "ModelVersion",
    "RegistryError",
    "RolloutAction",
    "RolloutEvent",
    "RolloutStageName",
    "StoredFile",
    "VersionMetadata",
    "stage_of",
]
