"""What a reader of another project's checkpoint produces: one skelssl model per stream, every source key
placed, and the shared helpers that place keys and check that none is left over."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import torch

from skelssl.data.ntu_preprocess import recipe_from_preset
from skelssl.errors import UserError
from skelssl.evaluation.backbone import NORMALISATION_KEYS

__all__ = ["ImportedModel", "KeyPlacer", "NTU_AIMCLR_EXPECTS"]

# The input the torchlight family's NTU models learnt on: CrosSCLR's ntu_gendata + preprocess_ntu
# ("NTU60_frame50"): centred on the spine joint of the first frame per body, 50 frames, the shoulder rotation.
# skelssl prepares the same with `prepare ntu60 --preset aimclr` (skelssl.data.ntu_preprocess); measured on the
# 60 shared NTU samples: 93.3 % with that preset, 1.7 % without centring (official_checkpoints/README.md).
NTU_AIMCLR_EXPECTS: dict[str, Any] = {
    "preset": "aimclr",
    "recipe": {key: value for key, value in asdict(recipe_from_preset("aimclr")).items() if key in NORMALISATION_KEYS},
    "why": "the authors' NTU preparation (CrosSCLR/AimCLR ntu_gendata + preprocess_ntu, NTU60_frame50)",
}


@dataclass
class ImportedModel:
    """One encoder (with its classifier or pretext parts) read from another project's checkpoint.

    state: tensors under skelssl's names (`encoder_q.` the encoder evaluation uses, `head.` a classifier,
    `projector_q.`/`encoder_k.`/`projector_k.` pretext parts, `source.` pretext state skelssl has no place for,
    kept as it was); key_map: source key -> skelssl key, for every source key of this stream.
    """

    family: str
    role: str  # "linear-eval" (encoder + classifier) or "pretext" (encoder + projector, key encoder, queue)
    stream: str
    encoder: str
    encoder_settings: dict[str, Any]
    layout: str
    in_channels: int
    state: dict[str, torch.Tensor]
    key_map: dict[str, str]
    head: dict[str, Any] | None = None
    expects: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    persons: int = 2
    trained_on: str = "unknown"
    # skelssl encoder key -> what the source format calls it (to name a tensor the file lacks)
    source_name: Callable[[str], str] | None = field(default=None, repr=False)


class KeyPlacer:
    """Moves source keys to skelssl names and remembers which source keys are still unplaced."""

    def __init__(self, tensors: dict[str, torch.Tensor], path: Any) -> None:
        self.tensors, self.path = tensors, path
        self.left = dict(tensors)
        self.state: dict[str, torch.Tensor] = {}
        self.key_map: dict[str, str] = {}

    def place(self, source: str, target: str, value: torch.Tensor | None = None) -> None:
        if source not in self.left:
            raise UserError(f"'{self.path}': the tensor '{source}' is missing (a checkpoint of this format has it)")
        self.state[target] = (self.left.pop(source) if value is None else (self.left.pop(source), value)[1])
        self.key_map[source] = target

    def place_prefix(self, source_prefix: str, target_prefix: str, rename: Any = None) -> int:
        """Every unplaced key under `source_prefix`, renamed by `rename(rest)` (default: unchanged)."""
        moved = 0
        for key in [k for k in self.left if k.startswith(source_prefix)]:
            rest = key[len(source_prefix):]
            self.place(key, target_prefix + (rename(rest) if rename else rest))
            moved += 1
        return moved

    def require_all_placed(self, what: str) -> None:
        if self.left:
            names = sorted(self.left)
            raise UserError(f"'{self.path}': {len(names)} tensor(s) fit no part of a {what} checkpoint, e.g. "
                            f"{', '.join(repr(n) for n in names[:5])}; skelssl imports a checkpoint only when it "
                            "can account for every tensor (use --format to say which reader to use)")
