"""Name -> class registries (methods, encoders, plug-ins, protocols): a dict with a registering decorator and a
lookup whose error names what is known."""

from __future__ import annotations

from typing import Any, TypeVar

from skelssl.errors import UserError

T = TypeVar("T")

__all__ = ["Registry"]


class Registry(dict):
    """A dict from `name` to registered objects (anything with a `name` attribute)."""

    def __init__(self, kind: str, config_key: str = "") -> None:
        super().__init__()
        self.kind, self.config_key = kind, config_key

    def register(self, obj: T) -> T:
        """Add `obj` under `obj.name` (usable as a class decorator)."""
        name = getattr(obj, "name", "")
        if not name:
            raise ValueError(f"a {self.kind} needs a non-empty `name` to be registered: {obj!r}")
        self[name] = obj
        return obj

    def lookup(self, name: str) -> Any:
        if name not in self:
            where = f" ({self.config_key})" if self.config_key else ""
            raise UserError(f"unknown {self.kind} '{name}'{where}; known: {', '.join(sorted(self)) or 'none'}")
        return self[name]
