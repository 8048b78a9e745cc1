"""The model being served, and the watcher that swaps in what the registry's alias names.

A :class:`Champion` is one registry version loaded and warmed up: the booster,
its feature order and its operating threshold, swapped as one immutable object,
so a request scores, decides and reports with one version whatever happens
meanwhile. :class:`ChampionSlot` holds the current one (a single reference:
readers never see half a swap). :class:`ChampionWatcher` polls the alias from its
own thread; on a move it loads the new version, checks and warms it, and only
then swaps it in. A version that fails stays out (the old one keeps serving) and
is retried with a growing back-off. The ``production`` watcher keeps its champion when
the alias is unset; the ``shadow`` watcher (``empty_when_unset``) empties its slot then,
since a cleared shadow must stop scoring. The model file is read through
:meth:`~berg.registry.ModelRegistry.read_model_file`, which checks it against the
size and sha256 recorded at registration: a file replaced under a registered
version is refused like any other version that cannot be served, and counted
apart (``berg_serving_model_integrity_failures_total``).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import xgboost as xgb

from berg.registry import MODEL_FILE, IntegrityError, ModelRegistry
from berg_serving.metrics import WatchMetrics

__all__ = ["Champion", "ChampionError", "ChampionSlot", "ChampionWatcher", "load_champion"]

log = logging.getLogger(__name__)

_MAX_BACKOFF_S = 300.0


class ChampionError(RuntimeError):
    """A registry version that cannot be served (bad metadata, unreadable or inconsistent model)."""


@dataclass(frozen=True, eq=False)
class Champion:
    """One loaded model version: what a prediction needs, swapped as a whole."""

    name: str
    version: str
    booster: xgb.Booster
    features: tuple[str, ...]
    """The booster's input columns, in order (the registry's ``params["features"]``)."""
    threshold: float
    """The operating threshold chosen for this version (``params["threshold"]``)."""

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        """Scores for float32 rows in :attr:`features` order (``inplace_predict``: no DMatrix per call).

        XGBoost's own check of the column count is skipped: :func:`load_champion` checked the booster's width
        against :attr:`features`, and every matrix is built in that order."""
        scores: np.ndarray = np.asarray(
            self.booster.inplace_predict(matrix, validate_features=False), dtype=np.float64
        ).reshape(-1)
        return scores

    def contributions(self, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """TreeSHAP of float32 rows in :attr:`features` order: each feature's contribution to the margin
        (``[rows, features]``) and the bias (``[rows]``), in log-odds.

        XGBoost computes contributions only from a DMatrix (``inplace_predict`` has no such output), so
        this builds one per call, on one thread like the booster.
        """
        data = xgb.DMatrix(matrix, missing=np.nan, nthread=1)
        # The booster may carry the training frame's column names; the matrix is in that order already.
        shap = np.asarray(self.booster.predict(data, pred_contribs=True, validate_features=False), dtype=np.float64)
        shap = shap.reshape(len(matrix), len(self.features) + 1)
        return shap[:, :-1], shap[:, -1]


def load_champion(registry: ModelRegistry, name: str, version: str) -> Champion:
    """Load ``version`` of ``name`` from the registry, check it and warm it up.

    The booster predicts on one OpenMP thread: a request holds a few rows, and waking
    OpenMP's threads costs more than the trees (100x on a busy machine); concurrency
    comes from the serving threads instead.

    Raises:
        ChampionError: the version lacks a feature list or a threshold, its booster disagrees with
            them, or its warm-up predictions are not probabilities.
        IntegrityError: its model file is missing or is not the file registered (changed since).
        RegistryError: the version does not exist.
    """
    metadata = registry.get(name, version)
    features = metadata.params.get("features")
    if not isinstance(features, list) or not features or not all(isinstance(f, str) and f for f in features):
        raise ChampionError(f"{name} {version} has no params['features'] (the model's column order)")
    threshold = metadata.params.get("threshold")
    if not isinstance(threshold, int | float) or isinstance(threshold, bool) or not 0.0 <= threshold <= 1.0:
        raise ChampionError(f"{name} {version} has no params['threshold'] in [0, 1] (got {threshold!r})")
    booster = xgb.Booster()
    try:
        booster.load_model(bytearray(registry.read_model_file(name, version)))
    except xgb.core.XGBoostError as error:
        raise ChampionError(f"{name} {version}: {MODEL_FILE} is not an XGBoost model: {error}") from None
    booster.set_param({"nthread": 1})
    if booster.num_features() != len(features):
        raise ChampionError(
            f"{name} {version}: the booster reads {booster.num_features()} columns, its metadata names {len(features)}"
        )
    champion = Champion(name, version, booster, tuple(str(f) for f in features), float(threshold))
    warm = np.vstack([np.full(len(features), np.nan), np.zeros(len(features))]).astype(np.float32)
    for _ in range(3):
        scores = champion.predict(warm)
    if not all(math.isfinite(s) and 0.0 <= s <= 1.0 for s in scores.tolist()):
        raise ChampionError(f"{name} {version} does not predict probabilities (warm-up gave {scores.tolist()})")
    return champion


class ChampionSlot:
    """The champion being served now; ``current`` is one reference, replaced whole."""

    def __init__(self) -> None:
        self.current: Champion | None = None


class ChampionWatcher:
    """Keeps a :class:`ChampionSlot` on the version the registry's alias names.

    Args:
        registry: where versions and aliases live.
        name: the model.
        alias: the alias to follow (``production``, or ``shadow``).
        slot: where the loaded champion goes.
        interval_s: seconds between reads of the alias.
        metrics: swaps, load failures (integrity failures apart too) and the version info
            (:attr:`ServingMetrics.champion_watch <berg_serving.metrics.ServingMetrics.champion_watch>`).
        check: refuses a champion this server cannot serve (raises ChampionError), e.g. one that needs
            features the transformer does not make; called before the swap.
        empty_when_unset: when the alias is unset or cleared, empty the slot (the shadow) instead of
            keeping what it holds (the champion: an unset alias must not stop serving).
    """

    def __init__(
        self,
        registry: ModelRegistry,
        name: str,
        alias: str,
        slot: ChampionSlot,
        interval_s: float,
        metrics: WatchMetrics,
        *,
        check: Callable[[Champion], None] | None = None,
        empty_when_unset: bool = False,
    ) -> None:
        self._registry = registry
        self._name = name
        self._alias = alias
        self._slot = slot
        self._interval_s = interval_s
        self._metrics = metrics
        self._check = check
        self._empty_when_unset = empty_when_unset
        self._failures: dict[str, tuple[int, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"{alias}-watcher", daemon=True)

    def poll(self) -> bool:
        """Read the alias once and swap if it moved; True when the slot holds the alias's version."""
        try:
            move = self._registry.alias(self._name, self._alias)
        except Exception:
            log.warning("could not read alias %s of %s", self._alias, self._name, exc_info=True)
            return False
        if move is None:
            if self._empty_when_unset:
                self._empty()
            elif self._slot.current is None:
                log.warning("alias %s of model %s is not set; nothing to serve yet", self._alias, self._name)
            return False
        current = self._slot.current
        if current is not None and current.version == move.version:
            return True
        attempts, retry_at = self._failures.get(move.version, (0, 0.0))
        if time.monotonic() < retry_at:
            return False
        try:
            champion = load_champion(self._registry, self._name, move.version)
            if self._check is not None:
                self._check(champion)
        except Exception as error:
            backoff = min(_MAX_BACKOFF_S, self._interval_s * 2**attempts)
            self._failures[move.version] = (attempts + 1, time.monotonic() + backoff)
            self._metrics.load_failures.inc()
            if isinstance(error, IntegrityError):
                self._metrics.integrity_failures.inc()
            log.error(
                "cannot serve %s %s (%s); %s; retrying in %.0fs",
                self._name,
                move.version,
                error,
                f"still serving {current.version}" if current else "nothing is served",
                backoff,
            )
            return False
        self._slot.current = champion
        self._failures.pop(move.version, None)
        self._metrics.swaps.inc()
        self._metrics.model.info(
            {"model": self._name, "version": champion.version, "threshold": str(champion.threshold)}
        )
        log.info(
            "serving %s %s",
            self._name,
            champion.version,
            extra={"previous": current.version if current else None, "threshold": champion.threshold},
        )
        return True

    def _empty(self) -> None:
        current = self._slot.current
        if current is None:
            return
        self._slot.current = None
        self._metrics.swaps.inc()
        self._metrics.model.info({"model": self._name, "version": "", "threshold": ""})
        log.info("alias %s of %s cleared; no longer running %s", self._alias, self._name, current.version)

    def start(self) -> None:
        """Poll from a background thread until :meth:`stop`."""
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop polling (a load in progress finishes first)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.poll()
