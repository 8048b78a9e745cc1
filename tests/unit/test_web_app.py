"""The app factory: body limit on streamed bytes, JSON errors, 4xx for bad input, health and metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter
from pydantic import BaseModel

from berg.observability.health import ReadinessChecks
from berg.web.app import WebSettings, create_app

LIMIT = 1_000


class Echo(BaseModel):
    text: str


def make_client(readiness: ReadinessChecks | None = None) -> httpx.AsyncClient:
    registry = CollectorRegistry()
    Counter("berg_test_things", "Things.", registry=registry).inc(3)
    app = create_app(WebSettings(max_body_bytes=LIMIT), title="test", registry=registry, readiness=readiness)

    @app.post("/echo")
    async def echo(body: Echo) -> Echo:
        return body

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("a bug")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://test")


async def chunks(total: int, size: int = 100) -> AsyncIterator[bytes]:
    for start in range(0, total, size):
        yield b"x" * min(size, total - start)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


pytestmark = [pytest.mark.unit, pytest.mark.anyio]


async def test_a_body_under_the_limit_is_served() -> None:
    async with make_client() as client:
        response = await client.post("/echo", json={"text": "hi"})
    assert response.status_code == 200
    assert response.json() == {"text": "hi"}


async def test_a_declared_body_over_the_limit_gets_413_as_json() -> None:
    async with make_client() as client:
        response = await client.post(
            "/echo", content=b'{"text": "' + b"x" * LIMIT + b'"}', headers={"content-type": "application/json"}
        )
    assert response.status_code == 413
    assert response.json()["error"] == "content_too_large"


async def test_a_streamed_body_without_length_is_counted_and_cut_at_the_limit() -> None:
    async with make_client() as client:
        response = await client.post("/echo", content=chunks(LIMIT * 5), headers={"content-type": "application/json"})
    assert "content-length" not in response.request.headers
    assert response.status_code == 413
    assert response.json()["error"] == "content_too_large"


async def test_a_streamed_body_under_the_limit_passes() -> None:
    async with make_client() as client:
        body = b'{"text": "' + b"y" * 100 + b'"}'

        async def stream() -> AsyncIterator[bytes]:
            yield body[:50]
            yield body[50:]

        response = await client.post("/echo", content=stream(), headers={"content-type": "application/json"})
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"{not json", "application/json"),
        (b'{"text": 5}', "application/json"),
        (b'{"wrong": "field"}', "application/json"),
        (b'{"text": "hi"}', "text/plain"),
        (b"", "application/json"),
    ],
)
async def test_bad_input_gets_a_4xx_json_error_never_5xx(content: bytes, content_type: str) -> None:
    async with make_client() as client:
        response = await client.post("/echo", content=content, headers={"content-type": content_type})
    assert 400 <= response.status_code < 500
    assert response.json()["error"] == "invalid_request"
    assert response.json()["detail"]


async def test_unknown_routes_and_methods_get_json_errors() -> None:
    async with make_client() as client:
        missing = await client.get("/nope")
        wrong_method = await client.delete("/echo")
    assert (missing.status_code, missing.json()["error"]) == (404, "not_found")
    assert (wrong_method.status_code, wrong_method.json()["error"]) == (405, "method_not_allowed")


async def test_a_bug_is_a_json_500_without_internals() -> None:
    async with make_client() as client:
        response = await client.get("/boom")
    assert response.status_code == 500
    assert response.json()["error"] == "internal_error"
    assert "a bug" not in response.text


async def test_health_and_readiness() -> None:
    healthy = {"ok": True}
    readiness = ReadinessChecks()
    readiness.add("kafka", lambda: healthy["ok"])
    async with make_client(readiness) as client:
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/readyz")).status_code == 200
        healthy["ok"] = False
        not_ready = await client.get("/readyz")
        assert not_ready.status_code == 503
        assert not_ready.json()["checks"]["kafka"] is False
        healthy["ok"] = True
        readiness.drain()
        draining = await client.get("/readyz")
        assert draining.status_code == 503
        assert draining.json()["checks"]["accepting_traffic"] is False
        assert (await client.get("/healthz")).status_code == 200


async def test_a_readiness_check_that_raises_counts_as_not_ready() -> None:
    readiness = ReadinessChecks()

    def broken() -> bool:
        raise ConnectionError("down")

    readiness.add("database", broken)
    async with make_client(readiness) as client:
        response = await client.get("/readyz")
    assert response.status_code == 503


async def test_metrics_are_served_from_the_services_own_registry() -> None:
    async with make_client() as client:
        response = await client.get("/metrics")
    assert response.status_code == 200
    assert "berg_test_things_total 3.0" in response.text
    assert response.headers["content-type"].startswith("text/plain")
