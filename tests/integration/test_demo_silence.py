"""The demo's silence on the stack's real Alertmanager: the retraining alerts of one model are held back while
it stands, others pass, and they are active again once it is expired."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from berg.contracts.alerts import RETRAINING_ALERTS
from berg_app.lifecycle.probes import AlertmanagerClient
from berg_app.stack.local import LocalStack
from tests.helpers import wait_for

pytestmark = pytest.mark.integration


def post_alert(base: str, **labels: str) -> None:
    now = datetime.now(UTC)
    alert = {"labels": labels, "startsAt": now.isoformat(), "endsAt": (now + timedelta(minutes=10)).isoformat()}
    httpx.post(f"{base}/api/v2/alerts", json=[alert], timeout=5).raise_for_status()


def state_of(base: str, model: str, alertname: str) -> dict[str, Any] | None:
    alerts = httpx.get(f"{base}/api/v2/alerts", params={"filter": f'model="{model}"'}, timeout=5).json()
    return next((a["status"] for a in alerts if a["labels"].get("alertname") == alertname), None)


def test_a_silence_holds_back_the_models_retraining_alerts_until_it_expires(stack: LocalStack) -> None:
    base = f"http://{stack.settings.host}:{stack.settings.ports.alertmanager}"
    model, other = f"m{uuid.uuid4().hex[:8]}", f"m{uuid.uuid4().hex[:8]}"
    client = AlertmanagerClient(base)
    try:
        silence = client.silence({"model": model, "alertname": RETRAINING_ALERTS}, timedelta(minutes=5), "backfill")
        assert silence in {s["id"] for s in client.active_silences()}
        for alertname in ("FeatureDriftHigh", "PredictionDriftHigh", "ServingLatencyHigh"):
            post_alert(base, alertname=alertname, model=model, severity="warning")
        post_alert(base, alertname="FeatureDriftHigh", model=other, severity="warning")

        def states() -> dict[str, str | None]:
            found = {
                name: state_of(base, model, name)
                for name in ("FeatureDriftHigh", "PredictionDriftHigh", "ServingLatencyHigh")
            }
            found["other model"] = state_of(base, other, "FeatureDriftHigh")
            return {name: None if status is None else status["state"] for name, status in found.items()}

        held = {
            "FeatureDriftHigh": "suppressed",
            "PredictionDriftHigh": "suppressed",
            "ServingLatencyHigh": "active",  # not a retraining alert
            "other model": "active",
        }
        wait_for(lambda: states() == held, 300, f"the silence to apply: {held}")
        assert silence in state_of(base, model, "FeatureDriftHigh")["silencedBy"]  # type: ignore[index]

        client.expire(silence)
        assert silence not in {s["id"] for s in client.active_silences()}
        wait_for(lambda: set(states().values()) == {"active"}, 300, "every alert to be active once it expired")
    finally:
        client.close()
