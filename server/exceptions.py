"""Errors the server raises on purpose, each mapped to one HTTP status.

    SPCError                      base: never leaves the process unhandled
    ├── InvalidRequest            400  the request is well-formed JSON but says something wrong
    │   └── IngestRejected        422  one sample of a batch is wrong; nothing of it was written
    ├── AuthenticationRequired    401  no key, or a key that is unknown or revoked
    ├── PermissionDenied          403  a valid key whose role or scope does not allow this
    ├── NotFound                  404  the named thing does not exist
    ├── Conflict                  409  the thing exists already, or the state forbids the change
    ├── PayloadTooLarge           413  the batch or body exceeds the configured bound
    └── Unavailable               503  a part of the server is down for now; retry (Retry-After)

Every error body is `{"detail": "<message>", "error": "<class name>"}`, plus `"sample"`
(the index in the batch) for ingest rejections.
"""

from __future__ import annotations


class SPCError(Exception):
    status_code = 500

    def __init__(self, message: str, **extra: object) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra

    def body(self) -> dict[str, object]:
        return {"detail": self.message, "error": type(self).__name__, **self.extra}


class InvalidRequest(SPCError):
    status_code = 400


class IngestRejected(InvalidRequest):
    status_code = 422


class AuthenticationRequired(SPCError):
    status_code = 401


class PermissionDenied(SPCError):
    status_code = 403


class NotFound(SPCError):
    status_code = 404


class Conflict(SPCError):
    status_code = 409


class PayloadTooLarge(SPCError):
    status_code = 413


class Unavailable(SPCError):
    status_code = 503
