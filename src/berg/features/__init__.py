"""Berg's feature layer on Feast: the feature definitions, an append-only offline store,
the label store, the point-in-time dataset builder and the leakage check.

Needs the ``berg[features]`` extra (Feast). Nothing here is imported by ``berg`` itself,
so services without Feature work never import Feast.
"""
