"""Kubernetes API errors, classified once: transient (worth a retry) or permanent."""

from __future__ import annotations

import json

_TRANSIENT_STATUSES = {0, 429, 500, 502, 503, 504}


class ApiError(Exception):
    """A failed API call, with the HTTP status, the API's reason and its message."""

    def __init__(self, status: int, reason: str, message: str, *, transient: bool | None = None) -> None:
        super().__init__(f"{status} {reason}: {message}" if status else message)
        self.status = status
        self.reason = reason
        self.message = message
        self.transient = status in _TRANSIENT_STATUSES if transient is None else transient

    @property
    def conflict(self) -> bool:
        return self.status == 409

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def forbidden(self) -> bool:
        return self.status == 403


def classify_status(status: int, raw: bytes, what: str) -> ApiError:
    reason, message = "", raw.decode("utf-8", "replace")[:2000]
    try:
        doc = json.loads(raw)
        reason = str(doc.get("reason", ""))
        message = str(doc.get("message", message))
    except (ValueError, AttributeError):
        pass
    return ApiError(status, reason or _default_reason(status), f"{what}: {message}")


def _default_reason(status: int) -> str:
    return {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
            409: "Conflict", 422: "Invalid", 429: "TooManyRequests"}.get(status, f"HTTP{status}")
