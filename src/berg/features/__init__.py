"""Berg's feature layer on Feast: the feature definitions, an append-only offline store,
the label store, the point-in-time dataset builder and the leakage check.

Needs the ``berg[features]`` extra (Feast). Nothing here is imported by ``berg`` itself,
so services without Feature work never import Feast.
"""

# Importing Feast (feast.metrics) sets PROMETHEUS_MULTIPROC_DIR for its Gunicorn
# workers when it is unset, and prometheus_client picks its value storage from that
# variable when it is first imported: metrics created afterwards would live in shared
# mmap files, and two registries' same-named metrics would share values. Berg's
# services keep one in-process registry each, so prometheus_client is imported first.
import prometheus_client.values  # noqa: F401
