"""Reading another project's checkpoint file: its tensors by name, without running any of its code.

A `.pt`/`.pth`/`.tar` file is loaded with `torch.load(weights_only=True)`: a file whose unpickling would import
or run code is refused. A `.safetensors` file is read by the safetensors library (no pickle at all). Wrappers are
unwrapped (`{'state_dict': ...}` of the skeleton-contrast family, `{'model': ...}`) and DataParallel's `module.`
prefix is removed, each said in the key map.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file as load_safetensors
from safetensors import safe_open

from skelssl.errors import UserError

__all__ = ["SourceFile", "read_source", "sha256_of", "SAFETENSORS_SUFFIX"]

SAFETENSORS_SUFFIX = ".safetensors"
WRAPPERS = ("state_dict", "model", "model_state_dict", "net")


@dataclass
class SourceFile:
    """The named tensors of a checkpoint file and what was done to reach them."""

    path: Path
    sha256: str
    tensors: dict[str, torch.Tensor]
    wrapper: str | None = None  # the dict entry the tensors were under ('state_dict' ...), None: at the top
    stripped_prefix: str | None = None  # 'module.' when every key had it (DataParallel)
    other_entries: dict[str, Any] = field(default_factory=dict)  # plain values beside the tensors (epoch, ...)
    metadata: dict[str, str] = field(default_factory=dict)  # a safetensors file's header metadata


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _is_safetensors(path: Path) -> bool:
    """The safetensors layout: an 8-byte little-endian header length, then a JSON header starting with '{'."""
    with open(path, "rb") as handle:
        head = handle.read(9)
    if len(head) < 9 or head[8:9] != b"{":
        return False
    return int.from_bytes(head[:8], "little") < path.stat().st_size


def _torch_load(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file is the user's to fix
        text = str(err)
        if "weights_only" in text or "Unsupported global" in text:
            raise UserError(f"'{path}' holds more than tensors and plain values (its unpickling would import or run "
                            "code, e.g. a whole pickled model or an optimizer of a custom class); skelssl does not "
                            "load such files. Re-save its state_dict with torch.save(model.state_dict(), PATH) in "
                            "the project that wrote it") from None
        first = text.strip().splitlines()[0] if text.strip() else "empty"
        raise UserError(f"'{path}' is not a readable PyTorch checkpoint ({type(err).__name__}: {first})") from None


def _unwrap(obj: Any, path: Path) -> tuple[dict[str, torch.Tensor], str | None, dict[str, Any]]:
    if not isinstance(obj, dict):
        raise UserError(f"'{path}' holds a {type(obj).__name__}, not a dict of named tensors (a state_dict)")
    if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return dict(obj), None, {}
    for name in WRAPPERS:
        inner = obj.get(name)
        if isinstance(inner, dict) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
            others = {k: v for k, v in obj.items() if k != name and not isinstance(v, (dict, torch.Tensor))}
            return dict(inner), name, others
    found = ", ".join(f"'{k}' ({type(v).__name__})" for k, v in list(obj.items())[:6])
    raise UserError(f"'{path}' has no state_dict skelssl recognises: its entries are {found}; expected named "
                    f"tensors at the top or under one of {', '.join(repr(w) for w in WRAPPERS)}")


def read_source(path: str | Path) -> SourceFile:
    """The tensors of a checkpoint file, unwrapped and without a common `module.` prefix."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint '{path}' does not exist")
    metadata: dict[str, str] = {}
    if _is_safetensors(path):
        try:
            tensors = load_safetensors(str(path))
            with safe_open(str(path), framework="pt") as handle:
                metadata = dict(handle.metadata() or {})
        except (SafetensorError, OSError, ValueError) as err:
            raise UserError(f"'{path}' is a damaged safetensors file ({err})") from None
        wrapper, others = None, {}
    else:
        tensors, wrapper, others = _unwrap(_torch_load(path), path)
    stripped = None
    if tensors and all(key.startswith("module.") for key in tensors):
        tensors = {key[len("module."):]: value for key, value in tensors.items()}
        stripped = "module."
    return SourceFile(path=path, sha256=sha256_of(path), tensors=tensors, wrapper=wrapper, stripped_prefix=stripped,
                      other_entries=others, metadata=metadata)
