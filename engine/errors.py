"""Errors the service raises; the web layer turns each into ``{"error": {...}}``."""
from __future__ import annotations


class PapoError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, details: list[dict] | None = None, code: str | None = None,
                 extra: dict | None = None):
        super().__init__(message)
        self.message = message
        self.details = details
        self.extra = extra or {}
        if code:
            self.code = code

    def to_json(self) -> dict:
        body = {"code": self.code, "message": self.message}
        if self.details is not None:
            body["details"] = self.details
        body.update(self.extra)
        return {"error": body}


class NotFound(PapoError):
    status, code = 404, "not_found"


class Conflict(PapoError):
    status, code = 409, "conflict"


class PreconditionRequired(PapoError):
    status, code = 428, "precondition_required"


class Invalid(PapoError):
    status, code = 422, "invalid"


class Forbidden(PapoError):
    status, code = 403, "forbidden"
