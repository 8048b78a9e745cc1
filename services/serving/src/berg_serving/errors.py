"""Errors of serving that are not the client's fault (the client's are KServe's ``InvalidInput``)."""

from __future__ import annotations

__all__ = ["UpstreamError"]


class UpstreamError(RuntimeError):
    """The predictor (the transformer's upstream) failed: 503 when unavailable, else 502.

    ``reason`` is the message, as on KServe's own errors (its gRPC interceptor reads it).
    """

    def __init__(self, reason: str, *, unavailable: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.unavailable = unavailable

    @property
    def status_code(self) -> int:
        return 503 if self.unavailable else 502
