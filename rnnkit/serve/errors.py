"""The one error shape every API route answers with: ``{"error": {"message", "type", "param"}}``."""
from __future__ import annotations


class APIError(Exception):
    """A request the server refuses: HTTP ``status`` (4xx) with a one-line ``message``,
    an error ``type`` (``invalid_request_error``, ``not_found_error``, ...) and the request
    field at fault (``param``, None when no single field is)."""

    def __init__(self, status: int, message: str, type: str = "invalid_request_error", param: str | None = None,
                 headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.param = status, message, type, param
        self.headers = headers or {}

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param}}


def bad(param: str | None, message: str) -> APIError:
    """A 400 naming ``param``."""
    return APIError(400, message, "invalid_request_error", param)
