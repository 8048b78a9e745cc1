"""``python -m berg_serving [--shape fused|transformer|predictor]``: run the serving service.

The shape comes from ``--shape`` or ``BERG_SERVING_SHAPE`` (default ``fused``); every
other setting from ``BERG_SERVING_*`` (:class:`~berg_serving.settings.ServingSettings`).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

from berg.features.settings import FeatureStoreSettings
from berg.observability.logging import configure_logging
from berg.settings import UseCaseSelection, load_settings_or_exit
from berg.usecase import resolve_use_case_or_exit
from berg_serving.settings import SHAPES, ServingSettings


def main(argv: Sequence[str] | None = None) -> None:
    """Read the settings once, assemble the shape, serve until SIGTERM."""
    # Parsed before KServe is imported (it parses sys.argv at import, and must not see ours first).
    parser = argparse.ArgumentParser(
        prog="berg-serving",
        description="Berg serving: score the use case's events (KServe V1 and V2, REST and gRPC).",
        allow_abbrev=False,
    )
    parser.add_argument("--shape", choices=SHAPES, help="overrides BERG_SERVING_SHAPE")
    # KServe appends its own arguments to a custom transformer's (--model_name, --predictor_host,
    # --http_port...); Berg takes those from BERG_SERVING_* instead, so they are ignored, not refused.
    args, ignored = parser.parse_known_args(argv)
    use_case = resolve_use_case_or_exit(load_settings_or_exit(UseCaseSelection).use_case)
    # The rules' parameters are the use case's: its settings type is known only now.
    settings = load_settings_or_exit(ServingSettings[use_case.rules])  # type: ignore[name-defined]
    model_name = settings.model_name or use_case.name
    feature_store = load_settings_or_exit(FeatureStoreSettings).store_config(
        settings.feast_profile, settings.feature_repo
    )
    shape = args.shape or settings.shape
    problems = settings.problems_for(shape)
    if problems:
        raise SystemExit(f"cannot run the {shape} shape:\n  " + "\n  ".join(problems))
    configure_logging(settings.logging, settings.service_name)
    if ignored:
        logging.getLogger("berg_serving").info("ignoring arguments (settings come from BERG_SERVING_*): %s", ignored)

    from berg_serving.runner import run

    run(settings, shape, feature_store, use_case, model_name=model_name)


if __name__ == "__main__":
    main()
