"""Bearer-token authentication of the state-changing endpoints (the webhook and manual runs).

Alertmanager sends ``Authorization: Bearer <token>`` from its receiver's
``http_config.authorization.credentials_file``; the token is compared in
constant time, and a missing or wrong one gets 401 (Alertmanager does not
retry a 4xx, so a misconfigured token shows up in its log at once).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

__all__ = ["bearer_token_check"]

_bearer = HTTPBearer(auto_error=False, description="The controller's webhook token.")


Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def bearer_token_check(secret: bytes) -> Callable[[HTTPAuthorizationCredentials | None], None]:
    """A FastAPI dependency that admits only requests carrying ``secret`` as their bearer token."""
    if not secret:
        raise ValueError("the webhook token must not be empty")

    def check(credentials: Credentials) -> None:
        presented = credentials.credentials.encode() if credentials is not None else b""
        # compare_digest takes as long whatever the first differing byte, and for a wrong length too.
        if not hmac.compare_digest(presented, secret):
            raise HTTPException(
                status_code=401,
                detail="a valid bearer token is required (Authorization: Bearer <token>)",
                headers={"WWW-Authenticate": "Bearer"},
            )

    return check
