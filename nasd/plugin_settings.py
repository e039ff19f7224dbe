"""A plugin's settings (``plugins: {<name>: {...}}`` in the nasd configuration) validated into its model."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from .errors import PermanentError
from .models import format_validation_error

Settings = TypeVar("Settings", bound=BaseModel)


def load_plugin_settings(model: type[Settings], raw: dict[str, Any], where: str) -> Settings:
    """``raw`` validated into ``model``; settings that do not validate raise PermanentError ``BadSettings`` that
    names each field after ``where`` (``plugins.zfs: mountRoot: must be an absolute path``)."""
    try:
        return model.model_validate(raw)
    except ValidationError as e:
        raise PermanentError(f"{where}: " + "; ".join(format_validation_error(e)), reason="BadSettings") from None
