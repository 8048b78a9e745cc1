"""``python -m berg_controller``: run the retraining controller until SIGTERM.

Every setting comes from ``BERG_CONTROLLER_*`` (:class:`~berg_controller.settings.ControllerSettings`).
On SIGTERM uvicorn stops accepting, finishes the requests in flight, and the
background loop ends its round; pipeline runs in progress keep going and the
next controller adopts them.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
from collections.abc import Iterator, Sequence
from types import FrameType

import uvicorn

from berg.observability.logging import configure_logging
from berg.settings import RolloutOverrides, load_settings_or_exit
from berg.usecase import resolve_use_case_or_exit
from berg_controller.settings import ControllerSettings

log = logging.getLogger("berg_controller")

_GRACEFUL_SHUTDOWN_S = 30


class _Server(uvicorn.Server):
    """Uvicorn whose SIGTERM ends in a clean exit (0) once the shutdown is done, not a re-raised signal."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        def stop(signum: int, _: FrameType | None) -> None:
            if self.should_exit:
                self.force_exit = True  # a second signal: stop waiting for connections
                return
            log.info("received %s; finishing requests in flight", signal.Signals(signum).name)
            self.should_exit = True

        previous = {signum: signal.signal(signum, stop) for signum in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


def main(argv: Sequence[str] | None = None) -> None:
    """Read the settings once, open the database, serve until SIGTERM or SIGINT."""
    argparse.ArgumentParser(
        prog="berg-controller",
        description="Berg retraining controller: Alertmanager webhooks, schedules, data volume and manual "
        "requests start the training pipeline, once. Settings: BERG_CONTROLLER_* environment variables.",
        allow_abbrev=False,
    ).parse_args(argv)
    settings = load_settings_or_exit(ControllerSettings)
    use_case = resolve_use_case_or_exit(settings.use_case)
    try:
        models = settings.managed_models(use_case.name)
    except ValueError as error:
        raise SystemExit(f"invalid settings for ControllerSettings: BERG_CONTROLLER_SCHEDULES: {error}") from None
    overrides = load_settings_or_exit(RolloutOverrides)
    try:
        rollout = overrides.apply(use_case.card.rollout)
        settings.check_rollout(rollout)
    except ValueError as error:  # pydantic's ValidationError included
        raise SystemExit(f"invalid rollout for the controller (BERG_ROLLOUT_*, BERG_CONTROLLER_*): {error}") from None
    configure_logging(settings.logging, settings.service_name)
    # httpx logs each request at INFO: the rollout and the watch ask Prometheus several times a round.
    logging.getLogger("httpx").setLevel(logging.WARNING)

    from berg_controller.app import create_controller_app
    from berg_controller.store import StoreUnavailable

    try:
        app = create_controller_app(settings, models, rollout)
    except StoreUnavailable as error:
        raise SystemExit(f"cannot open the controller database: {error}") from None
    config = uvicorn.Config(
        app,
        host=settings.web.host,
        port=settings.web.port,
        log_config=None,
        lifespan="on",
        timeout_graceful_shutdown=_GRACEFUL_SHUTDOWN_S,
    )
    # SIGTERM and SIGINT: a graceful shutdown (the lifespan's end stops the loop), then exit 0.
    _Server(config).run()


if __name__ == "__main__":
    main()
