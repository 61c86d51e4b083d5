"""Other projects' checkpoints in and out: `skelssl import` (torchlight, skeleton-contrast, skelssl's own
safetensors) and `skelssl export` (safetensors: tensors and JSON metadata, no pickle).

The format is found from the tensor names (`--format` forces one); a format skelssl has no encoder for gets an
error that says so. Every source tensor ends up somewhere named in the run's imported.json, or the import fails
naming it.
"""

from __future__ import annotations

from pathlib import Path

from skelssl.errors import UserError
from skelssl.interop import contrast, torchlight
from skelssl.interop.exchange import SKELSSL_FORMAT, export_run, looks_like_export, read_export
from skelssl.interop.imported import ImportedModel
from skelssl.interop.runs import write_imported_run
from skelssl.interop.sources import SourceFile, read_source

__all__ = ["FORMATS", "detect_format", "read_models", "import_checkpoint", "export_run"]

FORMATS = ("auto", "torchlight", "hico", "bigru", SKELSSL_FORMAT)
# Families skelssl has no encoder for, by a name their tensors carry: what the error says.
NO_ENCODER = {
    "transformer": ("blocks.0.attn", "MAMP / SkeletonMAE-style transformer"),
    "ctrgcn": ("l1.gcn1.convs", "CTR-GCN (A2MC's official encoder, MAMP's teacher)"),
    "agcn": ("l1.gcn1.conv_a", "2s-AGCN"),
}


def detect_format(source: SourceFile) -> str:
    tensors = source.tensors
    if looks_like_export(source):
        return SKELSSL_FORMAT
    if torchlight.looks_like(tensors):
        return "torchlight"
    if contrast.looks_like_hico(tensors):
        return "hico"
    if contrast.looks_like_bigru(tensors):
        return "bigru"
    for marker, family in NO_ENCODER.values():
        if any(marker in key for key in tensors):
            raise UserError(f"'{source.path}' looks like a {family} checkpoint (tensors named '*{marker}*'); skelssl "
                            "has no encoder of that architecture, so it cannot import it. It reads ST-GCN (CrosSCLR, "
                            "AimCLR, ActCLR), HiCo and skelssl's own exports")
    shown = ", ".join(list(tensors)[:5])
    raise UserError(f"'{source.path}': no reader recognises its tensors (first: {shown}); skelssl imports torchlight "
                    "ST-GCN (CrosSCLR/AimCLR/ActCLR), HiCo and its own .safetensors exports (--format forces one)")


def read_models(source: SourceFile, fmt: str = "auto", head: str = "auto",
                trained_on: str | None = None) -> tuple[str, list[ImportedModel]]:
    """(format, one ImportedModel per stream) of a read source file."""
    if fmt not in FORMATS:
        raise UserError(f"--format must be one of {', '.join(FORMATS)}, got '{fmt}'")
    fmt = detect_format(source) if fmt == "auto" else fmt
    if fmt == "torchlight":
        return fmt, torchlight.read_torchlight(source, head=head, trained_on=trained_on)
    if fmt == "hico":
        return fmt, contrast.read_hico(source, head=head, trained_on=trained_on)
    if fmt == "bigru":
        contrast.refuse_bigru(source)
    return fmt, [read_export(source)]


def import_checkpoint(path: str | Path, out: str | Path, *, fmt: str = "auto", head: str = "auto",
                      name: str | None = None, trained_on: str | None = None) -> list[Path]:
    """Read another project's checkpoint (or a skelssl export) into run directories: `out` for one stream,
    `out/<stream>` for each of several (CrosSCLR's three). Returns the run directories written."""
    source = read_source(path)
    fmt, models = read_models(source, fmt, head, trained_on)
    label = name or Path(path).stem
    notes = [f"tensors under '{source.wrapper}' in the file" if source.wrapper else "tensors at the file's top level"]
    if source.stripped_prefix:
        notes.append(f"every key had the prefix '{source.stripped_prefix}' (DataParallel), removed")
    out = Path(out)
    runs = []
    for model in models:
        target = out if len(models) == 1 else out / model.stream
        model_label = label if len(models) == 1 else f"{label}-{model.stream}"
        runs.append(write_imported_run(model, target, source=source.path, sha256=source.sha256, label=model_label,
                                       source_notes=notes + [f"format: {fmt}"]))
    return runs
