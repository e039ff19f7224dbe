"""SMB shares that hide the files desktops leave behind: a NASShare annotated ``nojunk.example.org/hide: "true"``
gets Samba's ``veto files`` for them (clients neither see nor create them) and ``delete veto files`` (a folder
that holds nothing else can still be deleted). Which names: the plugin's settings, ``plugins: {nojunk: {files:
[...]}}`` in nasd's configuration (default: macOS's ``.DS_Store``, Windows' ``Thumbs.db`` and ``desktop.ini``).

It implements one hook, ``smb_share_options``, which the SMB plugin declares: so it is marked optional, and
nasd loads it (and never calls it) where the SMB plugin is not installed or blocked."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from nasd.plugin import Context, NASShare, PermanentError, ZDataset, format_validation_error, hookimpl

NAME = "nojunk"
ANNOTATION = "nojunk.example.org/hide"
_PLAIN = re.compile(r"^[A-Za-z0-9._~$*?-][A-Za-z0-9 ._~$*?-]*$")  # a file name or pattern; no '/' (the separator)


class NoJunkSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    files: list[str] = Field(default_factory=lambda: [".DS_Store", "Thumbs.db", "desktop.ini"], min_length=1)

    @field_validator("files")
    @classmethod
    def _plain_names(cls, files: list[str]) -> list[str]:
        for name in files:
            if not _PLAIN.match(name) or name.endswith(" "):
                raise ValueError(f"{name!r} is not a file name (letters, digits, ' ._~$-', wildcards * and ?)")
        return files


class NoJunkPlugin:
    def __init__(self) -> None:
        self.settings: NoJunkSettings | None = None  # read once, on first use

    def _settings(self, ctx: Context) -> NoJunkSettings:
        if self.settings is None:
            try:
                self.settings = NoJunkSettings.model_validate(ctx.settings(NAME))
            except ValidationError as e:
                raise PermanentError(f"plugins.{NAME} in nasd's configuration: {'; '.join(format_validation_error(e))}"
                                     " (fix it and restart nasd)", reason="InvalidSettings") from None
        return self.settings

    @hookimpl(optionalhook=True)  # declared by the SMB plugin: without it, never called
    def smb_share_options(self, ctx: Context, share: NASShare, dataset: ZDataset) -> Mapping[str, Any] | None:
        wanted = share.metadata.annotations.get(ANNOTATION, "false")
        if wanted == "false":
            return None
        if wanted != "true":  # becomes the share's Ready=False condition, with this reason, until it is fixed
            raise PermanentError(f"annotation {ANNOTATION}: {wanted!r} is neither \"true\" nor \"false\"",
                                 reason="InvalidAnnotation")
        return {"veto files": "/" + "/".join(self._settings(ctx).files) + "/", "delete veto files": "yes"}
