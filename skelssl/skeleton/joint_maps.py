"""Joint maps between skeleton layouts, so an encoder pretrained on one layout can read data of another.

A map is a (V_target, V_source) matrix: every target joint is a weighted average of source joints (each row
sums to 1, so translations, rotations and scalings commute with the map). Applied to (N, C, T, V, M) data
along V.

NTU-25 (Kinect v2) <-> Kinect-20 (Kinect v1: NW-UCLA, MSR Action3D), by anatomy:

| Kinect-20        | NTU-25                                                                          |
|------------------|---------------------------------------------------------------------------------|
| hip_center       | spine_base                                                                      |
| spine            | spine_mid                                                                       |
| shoulder_center  | spine_shoulder                                                                  |
| head             | head                                                                            |
| the 16 limb joints (shoulders, elbows, wrists, hands, hips, knees, ankles, feet): the same names        |
| (none)           | neck = midpoint of shoulder_center and head (Kinect-20 has one bone there, NTU two) |
| (none)           | hand_tip and thumb of each hand = that hand (zero-length bones)                  |

NTU-25 -> Kinect-20 keeps the 20 shared joints (neck, hand tips and thumbs are dropped). Kinect-20 -> NTU-25
fills the five NTU joints as in the table. Both keep the bone structure: each bone of the target is either
zero (a filled hand tip or thumb), a whole source bone, a half of one (the two NTU neck bones split the
Kinect head bone), or the sum of source bones along the path the target skips (the Kinect head bone is
the NTU neck and head bones together); left stays left; Kinect-20 -> NTU-25 -> Kinect-20 is the identity.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch

from skelssl.errors import UserError
from skelssl.skeleton.layouts import KINECT20, NTU25, Layout

__all__ = ["JointMap", "get_joint_map", "available_joint_maps", "register_joint_map"]

ArrayLike = TypeVar("ArrayLike", np.ndarray, torch.Tensor)


@dataclass(frozen=True)
class JointMap:
    """Target joint j = sum_i weights[j, i] * source joint i (rows sum to 1)."""

    source: Layout
    target: Layout
    weights: np.ndarray  # (V_target, V_source) float32

    def __post_init__(self) -> None:
        shape = (self.target.num_joints, self.source.num_joints)
        if self.weights.shape != shape:
            raise ValueError(f"joint map {self.source.name} -> {self.target.name}: weights {self.weights.shape}, "
                             f"expected {shape}")
        if not np.allclose(self.weights.sum(axis=1), 1.0, atol=1e-6):
            raise ValueError(f"joint map {self.source.name} -> {self.target.name}: every row must sum to 1")

    def apply(self, x: ArrayLike) -> ArrayLike:
        """(N, C, T, V_source, M) -> (N, C, T, V_target, M), numpy or torch (on the tensor's device)."""
        if x.ndim != 5 or x.shape[3] != self.source.num_joints:
            raise UserError(f"joint map {self.source.name} -> {self.target.name}: expected (N, C, T, "
                            f"{self.source.num_joints}, M) data, got shape {tuple(x.shape)}")
        if isinstance(x, torch.Tensor):
            weights = torch.as_tensor(self.weights, dtype=x.dtype, device=x.device)
            return torch.einsum("nctvm,wv->nctwm", x, weights)
        return np.einsum("nctvm,wv->nctwm", x, self.weights.astype(x.dtype, copy=False))


def _by_names(source: Layout, target: Layout, rename: dict[str, str],
              filled: dict[str, dict[str, float]]) -> JointMap:
    """A map whose target joints are source joints (`rename`: target name -> source name, default the same
    name) or weighted averages of them (`filled`: target name -> {source name: weight})."""
    index = {name: i for i, name in enumerate(source.joint_names)}
    weights = np.zeros((target.num_joints, source.num_joints), dtype=np.float32)
    for j, name in enumerate(target.joint_names):
        for source_name, weight in (filled.get(name) or {rename.get(name, name): 1.0}).items():
            weights[j, index[source_name]] = weight
    return JointMap(source, target, weights)


_KINECT_TO_NTU_NAMES = {"hip_center": "spine_base", "spine": "spine_mid", "shoulder_center": "spine_shoulder"}

_MAPS: dict[tuple[str, str], JointMap] = {}


def register_joint_map(joint_map: JointMap) -> JointMap:
    """Make a map available to `get_joint_map` (and so to transfer evaluation and the Python API)."""
    _MAPS[(joint_map.source.name, joint_map.target.name)] = joint_map
    return joint_map


register_joint_map(_by_names(NTU25, KINECT20, rename=_KINECT_TO_NTU_NAMES, filled={}))
register_joint_map(_by_names(
    KINECT20, NTU25, rename={ntu: kinect for kinect, ntu in _KINECT_TO_NTU_NAMES.items()},
    filled={"neck": {"shoulder_center": 0.5, "head": 0.5},
            **{f"{side}_{part}": {f"{side}_hand": 1.0} for side in ("left", "right") for part in ("hand_tip", "thumb")}}))


def available_joint_maps() -> list[str]:
    return sorted(f"{source} -> {target}" for source, target in _MAPS)


def get_joint_map(source: Layout, target: Layout) -> JointMap | None:
    """The map from `source` to `target` data; None when the layouts are the same; a UserError when no map
    between them is known."""
    if source == target:
        return None
    found = _MAPS.get((source.name, target.name))
    if found is None or found.source != source or found.target != target:
        raise UserError(f"no joint map from layout '{source.name}' ({source.num_joints} joints) to "
                        f"'{target.name}' ({target.num_joints} joints); known maps: "
                        f"{', '.join(available_joint_maps())}. Evaluate on data of the encoder's layout, or "
                        "register a map (skelssl.skeleton.joint_maps.register_joint_map)")
    return found
