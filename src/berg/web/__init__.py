"""The FastAPI app factory every Berg HTTP service starts from."""

from berg.web.app import WebSettings, create_app

__all__ = ["WebSettings", "create_app"]
