"""Sharing weights without pickle: `skelssl export RUN --out FILE.safetensors` and its reader.

The file holds the encoder (`encoder_q.*`) and, when the run has one, the classifier (`head.*`) as safetensors
tensors, and in its header metadata one JSON entry, "skelssl": the format name and version, the encoder's
config section, the layout, the data facts the input depends on (channels, persons, stream), the classifier's
classes, the input normalisation the weights expect and the provenance. Reading it needs no pickle at all
(safetensors parses a JSON header and raw tensor bytes); `skelssl import FILE.safetensors` makes a run of it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from safetensors.torch import save_file

from skelssl import __version__
from skelssl.checkpoints import read_checkpoint, run_dir_of
from skelssl.errors import UserError
from skelssl.evaluation.loading import ENCODER_PREFIX, HEAD_PREFIX
from skelssl.interop.imported import ImportedModel
from skelssl.interop.sources import SAFETENSORS_SUFFIX, SourceFile

__all__ = ["SKELSSL_FORMAT", "EXPORT_VERSION", "export_run", "looks_like_export", "read_export"]

SKELSSL_FORMAT = "skelssl"
EXPORT_VERSION = 1


def export_run(run: str | Path, out: str | Path) -> Path:
    """The encoder (and classifier) of a run as a .safetensors file at `out` (module docstring)."""
    out = Path(out)
    if out.suffix != SAFETENSORS_SUFFIX:
        raise UserError(f"--out '{out}' must end in {SAFETENSORS_SUFFIX}")
    if out.is_dir():
        raise UserError(f"--out '{out}' is a folder; give a file name ending in {SAFETENSORS_SUFFIX}")
    ckpt = read_checkpoint(run)
    cfg = OmegaConf.create(ckpt["hyper_parameters"]["cfg"])
    info = ckpt["skelssl"]
    keep = (ENCODER_PREFIX, HEAD_PREFIX) if info.get("head") else (ENCODER_PREFIX,)
    tensors = {k: v.detach().contiguous() for k, v in ckpt["state_dict"].items() if k.startswith(keep)}
    if not any(k.startswith(ENCODER_PREFIX) for k in tensors):
        raise UserError(f"'{run}' holds no encoder under '{ENCODER_PREFIX}'")
    data_info = dict(ckpt["hyper_parameters"].get("train_data_info") or {})
    encoder = str(cfg.model.encoder)
    meta = {
        "format": SKELSSL_FORMAT, "export_version": EXPORT_VERSION, "skelssl_version": __version__,
        "encoder": encoder, "encoder_settings": OmegaConf.to_container(cfg.model[encoder], resolve=True),
        "layout": ckpt["hyper_parameters"]["layout"], "stream": str(cfg.data.stream),
        "channels": int(data_info.get("channels", 3)), "persons": data_info.get("persons"),
        "trained_on": str(data_info.get("dataset") or Path(str(data_info.get("root") or "unknown")).name),
        "head": info.get("head"), "expects": info.get("expects"),
        "provenance": {"run": str(run_dir_of(run)), "method": info.get("method"),
                       "config_hash": info.get("config_hash"), "imported": info.get("imported") or None},
    }
    if meta["provenance"]["imported"]:  # the key map of the first import stays in that run's imported.json
        meta["provenance"]["imported"] = {k: v for k, v in meta["provenance"]["imported"].items() if k != "key_map"}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    save_file(tensors, str(tmp), metadata={"skelssl": json.dumps(meta)})
    os.replace(tmp, out)
    return out


def looks_like_export(source: SourceFile) -> bool:
    return "skelssl" in source.metadata


def read_export(source: SourceFile) -> ImportedModel:
    try:
        meta: dict[str, Any] = json.loads(source.metadata["skelssl"])
    except (KeyError, json.JSONDecodeError) as err:
        raise UserError(f"'{source.path}' is not a skelssl export: its header has no readable 'skelssl' entry "
                        f"({err})") from None
    if meta.get("format") != SKELSSL_FORMAT or int(meta.get("export_version", 0)) > EXPORT_VERSION:
        raise UserError(f"'{source.path}': export format {meta.get('format')} version {meta.get('export_version')}; "
                        f"this skelssl reads '{SKELSSL_FORMAT}' up to version {EXPORT_VERSION}")
    unknown = sorted(k for k in source.tensors if not k.startswith((ENCODER_PREFIX, HEAD_PREFIX)))
    if unknown:
        raise UserError(f"'{source.path}': tensors outside the encoder and the classifier: {', '.join(unknown[:5])}")
    if any(k.startswith(HEAD_PREFIX) for k in source.tensors) != bool(meta.get("head")):
        raise UserError(f"'{source.path}': its metadata and its tensors disagree about the classifier")
    return ImportedModel(family="skelssl-export", role="linear-eval" if meta.get("head") else "encoder",
                         stream=str(meta["stream"]), encoder=str(meta["encoder"]),
                         encoder_settings=dict(meta["encoder_settings"]), layout=meta["layout"],
                         in_channels=int(meta["channels"]), state=dict(source.tensors),
                         key_map={k: k for k in source.tensors}, head=meta.get("head"), expects=meta.get("expects"),
                         persons=int(meta["persons"]) if meta.get("persons") is not None else 2,
                         trained_on=str(meta.get("trained_on") or "unknown"),
                         notes=[f"exported by skelssl {meta.get('skelssl_version')} from {meta['provenance']['run']}"])
