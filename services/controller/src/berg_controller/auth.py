"""Bearer-token authentication of the state-changing endpoints (the webhook and manual runs).

Alertmanager sends ``Authorization: Bearer <token>`` from its receiver's
``http_config.authorization.credentials_file``; the token is compared in
constant time, and a missing or wrong one gets 401 (Alertmanager does not
retry a 4xx, so a misconfigured token shows up in its log at once).

The check runs before the request body is read: :meth:`BearerToken.route_class`
wraps the routes' handlers, so an unauthenticated sender never gets the
controller to read, let alone parse, up to the body limit (FastAPI resolves a
route's dependencies only after it parsed the body). The route dependency
(:meth:`BearerToken.dependency`) stays for the OpenAPI security scheme.

Example:
    >>> token = BearerToken(b"s3cret-token-0123456789")
    >>> router = APIRouter(route_class=token.route_class(), dependencies=[Depends(token.dependency())])
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, Response
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param

__all__ = ["BearerToken"]

_bearer = HTTPBearer(auto_error=False, description="The controller's webhook token.")

Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


class BearerToken:
    """Admits only requests whose ``Authorization`` header carries ``secret`` as a bearer token."""

    def __init__(self, secret: bytes) -> None:
        if not secret:
            raise ValueError("the webhook token must not be empty")
        self._secret = secret

    def _admit(self, presented: bytes) -> None:
        # compare_digest takes as long whatever the first differing byte, and for a wrong length too.
        if not hmac.compare_digest(presented, self._secret):
            raise HTTPException(
                status_code=401,
                detail="a valid bearer token is required (Authorization: Bearer <token>)",
                headers={"WWW-Authenticate": "Bearer"},
            )

    def verify(self, authorization: str | None) -> None:
        """Raise a 401 HTTPException unless ``authorization`` (the header's value) is ``Bearer <secret>``."""
        scheme, credentials = get_authorization_scheme_param(authorization)
        self._admit(credentials.encode() if scheme.lower() == "bearer" and credentials else b"")

    def dependency(self) -> Callable[[HTTPAuthorizationCredentials | None], None]:
        """The same check as a FastAPI dependency: it declares the bearer scheme in the OpenAPI document."""

        def check(credentials: Credentials) -> None:
            self._admit(credentials.credentials.encode() if credentials is not None else b"")

        return check

    def route_class(self) -> type[APIRoute]:
        """An ``APIRoute`` whose handler checks the token before anything reads the request body."""
        verify = self.verify

        class BearerFirstRoute(APIRoute):
            def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
                handler = super().get_route_handler()

                async def checked(request: Request) -> Response:
                    verify(request.headers.get("authorization"))
                    return await handler(request)

                return checked

        return BearerFirstRoute
