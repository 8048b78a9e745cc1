"""Berg's features service: streaming aggregates and snapshot views into Feast."""

# Before Feast: see berg.features (prometheus_client must not start in multiprocess mode).
import berg.features  # noqa: F401
