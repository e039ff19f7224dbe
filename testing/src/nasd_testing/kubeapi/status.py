"""Errors as the kube-apiserver reports them: ``meta/v1`` ``Status`` objects.

Every failed request to a real API server answers with a JSON ``Status``
(``{"kind": "Status", "apiVersion": "v1", "status": "Failure", ...}``) whose
``reason`` and ``code`` clients branch on (client-go's ``errors.IsNotFound``,
``IsConflict``...; kubernetes-asyncio's ``ApiException.status``), and whose
``message`` kubectl prints after ``Error from server (<reason>):``. The messages
here are the apiserver's own wording (``k8s.io/apimachinery/pkg/api/errors``
and ``.../util/validation/field``), so tests may match on them.

Simpler than the real server: only the reasons this fake can produce exist,
and ``retryAfterSeconds`` is never set.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


def _quote(value: Any) -> str:
    """Render a value the way Go's ``%q``/``%v`` does in field error messages."""
    return json.dumps(value, separators=(",", ":"), default=str)


@dataclass
class FieldError:
    """One ``field.Error``: a path such as ``spec.protocol`` and what is wrong there.

    ``reason`` is the ``StatusCause`` type (``FieldValueRequired``,
    ``FieldValueNotSupported``, ``FieldValueInvalid``, ...); ``detail`` is the
    message without the path, e.g. ``Unsupported value: "x": supported values: "smb", "nfs"``.
    """

    field: str
    reason: str
    detail: str

    @property
    def text(self) -> str:
        return f"{self.field}: {self.detail}" if self.field else self.detail

    @classmethod
    def required(cls, path: str, detail: str = "") -> FieldError:
        return cls(path, "FieldValueRequired", "Required value" + (f": {detail}" if detail else ""))

    @classmethod
    def not_supported(cls, path: str, value: Any, allowed: list[Any]) -> FieldError:
        choices = ", ".join(_quote(v) for v in allowed)
        return cls(path, "FieldValueNotSupported", f"Unsupported value: {_quote(value)}: supported values: {choices}")

    @classmethod
    def invalid(cls, path: str, value: Any, detail: str) -> FieldError:
        return cls(path, "FieldValueInvalid", f"Invalid value: {_quote(value)}: {detail}")

    @classmethod
    def type_invalid(cls, path: str, value: Any, detail: str) -> FieldError:
        return cls(path, "FieldValueTypeInvalid", f"Invalid value: {_quote(value)}: {detail}")

    @classmethod
    def forbidden(cls, path: str, detail: str) -> FieldError:
        return cls(path, "FieldValueForbidden", f"Forbidden: {detail}")

    @classmethod
    def too_long(cls, path: str, limit: int) -> FieldError:
        return cls(path, "FieldValueTooLong", f"Too long: may not be more than {limit} bytes")

    @classmethod
    def too_many(cls, path: str, actual: int, limit: int) -> FieldError:
        return cls(path, "FieldValueTooMany", f"Too many: {actual}: must have at most {limit} items")


@dataclass
class ApiError(Exception):
    """An error answer: raise it anywhere below a handler, the app turns it into a ``Status``."""

    code: int
    reason: str
    message: str
    details: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.code} {self.reason}: {self.message}"

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            body["details"] = self.details
        return body


def _details(name: str | None, group: str, kind: str, **extra: Any) -> dict[str, Any]:
    details: dict[str, Any] = {}
    if name is not None:
        details["name"] = name
    if group:
        details["group"] = group
    details["kind"] = kind
    details.update(extra)
    return details


def qualified(plural: str, group: str) -> str:
    """``nasshares.nasd.io`` or ``configmaps`` (the core group has no suffix)."""
    return f"{plural}.{group}" if group else plural


def not_found(group: str, plural: str, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{qualified(plural, group)} "{name}" not found', _details(name, group, plural))


def already_exists(group: str, plural: str, name: str) -> ApiError:
    return ApiError(409, "AlreadyExists", f'{qualified(plural, group)} "{name}" already exists',
                    _details(name, group, plural))


def conflict(group: str, plural: str, name: str, why: str | None = None) -> ApiError:
    why = why or "the object has been modified; please apply your changes to the latest version and try again"
    return ApiError(409, "Conflict", f'Operation cannot be fulfilled on {qualified(plural, group)} "{name}": {why}',
                    _details(name, group, plural))


def invalid(group: str, kind: str, name: str, errors: list[FieldError]) -> ApiError:
    """422 ``Invalid``: ``<Kind>.<group> "<name>" is invalid: <field>: <detail>`` (a list for several)."""
    texts = [e.text for e in errors]
    joined = texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
    what = f"{kind}.{group}" if group else kind
    causes = [{"reason": e.reason, "message": e.detail, "field": e.field} for e in errors]
    return ApiError(422, "Invalid", f'{what} "{name}" is invalid: {joined}', _details(name, group, kind, causes=causes))


def unprocessable(detail: str) -> ApiError:
    """422 as ``errors.NewGenericServerResponse`` makes it (e.g. a JSON patch that does not apply)."""
    return ApiError(422, "Invalid", "the server rejected our request due to an error in our request",
                    {"causes": [{"reason": "UnexpectedServerResponse", "message": detail}]})


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def forbidden(group: str, plural: str, name: str, why: str) -> ApiError:
    return ApiError(403, "Forbidden", f'{qualified(plural, group)} "{name}" is forbidden: {why}',
                    _details(name, group, plural))


def expired(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


def unsupported_media_type(accepted: list[str], note: str = "") -> ApiError:
    return ApiError(415, "UnsupportedMediaType",
                    f"the body of the request was in an unknown format - accepted media types include: "
                    f"{', '.join(accepted)}" + (f" ({note})" if note else ""))


def method_not_allowed() -> ApiError:
    return ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


def no_such_resource() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})
