"""``python -m berg_features``: run the features service."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

from berg.features.settings import FeatureStoreSettings
from berg.settings import load_settings_or_exit
from berg.usecase import resolve_use_case_or_exit
from berg_features.settings import FeaturesSettings

LABEL_STORE = "label_store"

log = logging.getLogger(__name__)


def main() -> None:
    """Read settings once, register the feature repo, then consume until SIGTERM."""
    settings = load_settings_or_exit(FeaturesSettings)
    use_case = resolve_use_case_or_exit(settings.use_case)
    if not use_case.features.streaming:
        raise SystemExit(f"BERG_USE_CASE: use case {use_case.name!r} declares no streaming view to compute")
    scored_topic = settings.scored_topic or use_case.scored.valid_topic
    labels_topic = settings.labels_topic or use_case.labels.valid_topic
    feature_store = load_settings_or_exit(FeatureStoreSettings).store_config(
        settings.feast_profile, settings.feature_repo
    )
    # Imported once the settings are good: Feast turns DeprecationWarnings on process-wide when imported, and a
    # settings error must be the one line on stderr.
    from berg.features.label_store import LabelStore
    from berg.features.store import close_store, open_store, prepare_store
    from berg.service import ServiceContext, run_consumer_service
    from berg_features.aggregates import SECOND, WindowAggregator
    from berg_features.handler import FeaturesHandler, Source
    from berg_features.metrics import FeaturesMetrics
    from berg_features.run_schedule import RunSchedule
    from berg_features.snapshot_job import SnapshotJob, SnapshotJobs
    from berg_features.streamed_view import FeastTarget

    def build(context: ServiceContext) -> FeaturesHandler:
        for view in use_case.features.streaming:
            if view.entity.key != use_case.scored.key:
                # Its entities' events arrive on every partition: an instance holding some of them
                # sees only their share (docs/features.md, "Several streaming views").
                log.warning(
                    "streaming view %s is keyed by %s, not by the scored stream's record key %s: it is exact "
                    "only while one instance consumes every partition",
                    view.name,
                    view.entity.key,
                    use_case.scored.key,
                )
        metrics = FeaturesMetrics.register(context.registry)
        store = open_store(feature_store)
        prepare_store(store, use_case.features, settings.offline_root)
        label_store = LabelStore(f"{settings.offline_root.rstrip('/')}/{LABEL_STORE}", use_case.scored, use_case.labels)
        schedule = RunSchedule(settings.snapshot_interval_s, settings.snapshot_run_spacing_s)
        lateness_us = int(settings.allowed_lateness_s * SECOND)
        handler = FeaturesHandler(
            FeastTarget(store),
            label_store,
            [(view, WindowAggregator(view.aggregation, lateness_us)) for view in use_case.features.streaming],
            context.dead_letters,
            metrics,
            scored=Source(scored_topic, use_case.scored.contract),
            labels=Source(labels_topic, use_case.labels.contract),
            eviction_interval_s=settings.state_eviction_interval_s,
            on_stored=schedule.nudge,
        )
        context.rebalance.on_assigned(handler.on_assigned)
        context.rebalance.on_revoked(handler.on_revoked)
        # The snapshot jobs have their own FeatureStore: Feast's objects are not shared across threads.
        job_store = open_store(feature_store)
        jobs = SnapshotJobs(
            [
                SnapshotJob(
                    snapshot_view,
                    use_case.label_join,
                    job_store,
                    label_store,
                    settings.offline_root,
                    metrics,
                    allowed_lateness=timedelta(seconds=settings.allowed_lateness_s),
                    backfill=timedelta(days=settings.snapshot_backfill_days),
                    days_per_run=settings.snapshot_days_per_run,
                )
                for snapshot_view in use_case.features.snapshots
            ],
            label_store,
        )
        leader_partition = (scored_topic, 0)

        def lead_if_first(partitions: list[tuple[str, int]]) -> None:
            # One instance plans and writes the snapshots: the one consuming partition 0.
            if leader_partition in partitions:
                jobs.lead()

        def step_down_if_first(partitions: list[tuple[str, int]]) -> None:
            if leader_partition in partitions:
                jobs.step_down()

        context.rebalance.on_assigned(lead_if_first)
        context.rebalance.on_revoked(step_down_if_first)
        stop = threading.Event()
        thread = threading.Thread(target=jobs.run_forever, args=(stop, schedule), name="snapshot-jobs", daemon=True)
        thread.start()

        def stop_job() -> None:
            stop.set()
            schedule.nudge()  # wakes the job's wait at once
            thread.join(timeout=60)
            close_store(job_store)
            close_store(store)

        context.on_shutdown(stop_job)
        return handler

    run_consumer_service(settings, topics=[scored_topic, labels_topic], build_handler=build)


if __name__ == "__main__":
    main()
