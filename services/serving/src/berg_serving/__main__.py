"""``python -m berg_serving [--shape fused|transformer|predictor]``: run the serving service.

The shape comes from ``--shape`` or ``BERG_SERVING_SHAPE`` (default ``fused``); every
other setting from ``BERG_SERVING_*`` (:class:`~berg_serving.settings.ServingSettings`).
With ``BERG_SERVING_WORKERS`` over 1 this process supervises that many workers
(:mod:`berg_serving.workers`), each of which runs :func:`serve_worker`.
"""

from __future__ import annotations

import argparse
import logging
import socket
import sys
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import ValidationError

from berg.features.settings import FeatureStoreSettings
from berg.observability.logging import configure_logging
from berg.problem.card import RolloutSpec
from berg.settings import RolloutOverrides, UseCaseSelection, load_settings_or_exit
from berg.usecase import resolve_use_case_or_exit
from berg_serving.settings import SHAPES, ServingSettings

Serve = Callable[[Sequence[socket.socket], Callable[[], None] | None], None]
"""Runs the prepared shape (:func:`berg_serving.runner.run`) on the given HTTP sockets, until SIGTERM."""


def _prepare(argv: Sequence[str]) -> tuple[ServingSettings[Any], Serve]:
    """Read the settings once and configure logging; return them and what serves the shape."""
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
    shadow_share = _shadow_share(use_case.card.rollout)
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

    def serve(sockets: Sequence[socket.socket], on_listening: Callable[[], None] | None) -> None:
        from berg_serving.runner import run

        run(
            settings,
            shape,
            feature_store,
            use_case,
            model_name=model_name,
            shadow_share=shadow_share,
            sockets=sockets,
            on_listening=on_listening,
        )

    return settings, serve


def _shadow_share(card_rollout: RolloutSpec) -> float:
    """The share of scored events the shadow scores: the card's, or ``BERG_ROLLOUT_SHADOW_SHARE``; exits with one
    line naming the variable when the overrides do not apply."""
    overrides = load_settings_or_exit(RolloutOverrides)
    try:
        return overrides.apply(card_rollout).shadow.share
    except ValidationError as error:
        message = " ".join(str(error.errors()[0]["msg"]).split())
        raise SystemExit(f"invalid settings for RolloutOverrides: BERG_ROLLOUT_*: {message}") from None


def main(argv: Sequence[str] | None = None) -> None:
    """Read the settings once, assemble the shape, serve until SIGTERM (or supervise the workers that do)."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    settings, serve = _prepare(arguments)
    if settings.workers == 1:
        serve((), None)
        return
    from berg_serving.workers import supervise

    raise SystemExit(supervise(settings, arguments))


def serve_worker(argv: Sequence[str], sockets: Sequence[socket.socket], on_listening: Callable[[], None]) -> None:
    """One worker of :func:`berg_serving.workers.supervise`: read the settings and assemble everything in this
    process, then serve HTTP on the supervisor's ``sockets`` (and gRPC on the shared port) until SIGTERM."""
    _, serve = _prepare(argv)
    serve(sockets, on_listening)


if __name__ == "__main__":
    main()
