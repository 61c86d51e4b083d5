"""A built-in synthetic 3D-skeleton action dataset (NTU-25 layout), the default that `skelssl demo` trains on.

Numpy only and deterministic from a seed. Each sample is an (3, T, 25, 2) float32 array in metres, in a
Kinect-like camera frame: x horizontal, y up, z depth away from the camera; at view angle 0 the subject
faces the camera (their forward direction is -z, their left side is +x).

How a sample is made:
1. A rest pose of the NTU-25 skeleton (spine base at the origin), with body proportions drawn per subject
   (overall height, trunk, shoulder/hip width, arm and leg scale) plus ~1 % per-sample jitter.
2. Forward kinematics over the (undirected) NTU25 edges, rooted at the spine base: every bone keeps its
   rest length and only rotates, so bone lengths are constant over time within a sample. A local rotation
   is attached to the bone that ends at a joint, e.g. the rotation stored at the elbow joint turns the
   upper arm (the "shoulder" rotation) and everything below it.
3. The class motion (a few local rotations and a root offset with an envelope in time) composed with idle
   motion (breathing, sway, small arm and head movements) and a random static stance.
4. Grounding: the body is shifted vertically so that the lower ankle stays at its rest height (squats go
   down, kicks stand on the other leg); the jump's flight height is added after that.
5. Nuisance: speed 0.7-1.4x, start time, amplitude and repetition frequency; a random static stance
   (trunk/head lean, arm posture, feet apart); with probability `distractor_prob` an unrelated slow movement
   of a limb the class does not use; a slow drift on the floor (up to `drift` m) and a slow turn of the
   subject (up to +-`turn_range_deg`); view rotation about the vertical axis (default +-90 deg), a camera
   tilt (+-20 deg), translation, sensor noise (default 1 cm), and in ~25 % of the samples a second, idle
   person; otherwise person 2 is all zeros, as in NTU RGB+D.

Difficulty (defaults, seed 0, xsub 1680 train / 720 test): a no-learning 1-NN (cosine, raw coordinates of
person 0 centred on the first frame's spine-shoulder joint) reaches ~0.61 test accuracy (0.59-0.61 over
seeds 0-2); logistic regression on hand features in a hip-aligned frame (per-joint velocity energy and
position statistics) reaches ~0.99. The nuisance factors that lower the raw 1-NN most are the distractor
movements and the drift; view rotation alone barely matters (a standing body is mostly vertical).

Choices (the brief leaves them open): all samples are full length T (as after the CrosSCLR-style
resampling to 50 frames), so `lengths` are all T and there is no zero padding in time. Speed (0.7-1.4x)
scales the duration of the action window and its oscillation frequency together; the window starts at a
random time. The ground-truth actionlet of a sample is, for person 0, the joints of the class's declared
body parts in the frames where the class motion displaces them by more than `ACTIONLET_THRESHOLD` metres
(in the root-fixed body frame, idle motion removed) or where the class moves the whole body
(root speed above `ROOT_SPEED_THRESHOLD` metres/frame).

Some class pairs are deliberately confusable: wave right / wave left, punch right / reach right,
squat / bow, raise both arms / reach.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from skelssl.data.ntu_preprocess import align_shoulders_per_frame
from skelssl.data.prepared import PreparedMeta, write_prepared
from skelssl.skeleton.layouts import NTU25

__all__ = ["CLASS_NAMES", "SyntheticData", "generate_synthetic", "prepare_synthetic"]

CLASS_NAMES: tuple[str, ...] = (
    "wave_right", "wave_left", "punch_right", "reach_right", "kick_right", "squat",
    "bow", "clap", "nod_head", "raise_both_arms", "side_step", "jump",
)

NUM_JOINTS = NTU25.num_joints
ACTIONLET_THRESHOLD = 0.025  # metres of class-induced displacement that count as "the joint moves"
ROOT_SPEED_THRESHOLD = 0.004  # metres per frame of class-induced whole-body motion

# Joint indices (0-based NTU-25). A rotation stored at joint j turns the bone parent(j) -> j.
SPINE_BASE, SPINE_MID, NECK, HEAD = 0, 1, 2, 3
L_SHOULDER, L_ELBOW, L_WRIST, L_HAND = 4, 5, 6, 7
R_SHOULDER, R_ELBOW, R_WRIST, R_HAND = 8, 9, 10, 11
L_HIP, L_KNEE, L_ANKLE, L_FOOT = 12, 13, 14, 15
R_HIP, R_KNEE, R_ANKLE, R_FOOT = 16, 17, 18, 19
SPINE_SHOULDER = 20

PARTS = NTU25.parts
LEFT_ARM, RIGHT_ARM = PARTS["left_arm"], PARTS["right_arm"]
LEFT_LEG, RIGHT_LEG, TRUNK = PARTS["left_leg"], PARTS["right_leg"], PARTS["trunk"]
ALL_JOINTS = tuple(range(NUM_JOINTS))

# Rest pose (metres) of a ~1.75 m adult, spine base at the origin, arms hanging slightly away from the body.
_REST = np.zeros((NUM_JOINTS, 3))
_REST_SPEC = {
    SPINE_BASE: (0.0, 0.0, 0.0), SPINE_MID: (0.0, 0.28, 0.0), SPINE_SHOULDER: (0.0, 0.50, 0.0),
    NECK: (0.0, 0.58, 0.0), HEAD: (0.0, 0.72, 0.0),
    L_SHOULDER: (0.18, 0.47, 0.0), L_ELBOW: (0.20, 0.20, 0.0), L_WRIST: (0.21, -0.05, 0.0),
    L_HAND: (0.215, -0.13, 0.0), 22: (0.20, -0.16, -0.03), 21: (0.215, -0.21, 0.0),
    L_HIP: (0.09, -0.02, 0.0), L_KNEE: (0.10, -0.44, 0.0), L_ANKLE: (0.10, -0.85, 0.0),
    L_FOOT: (0.10, -0.90, -0.12),
}
for _j, _p in list(_REST_SPEC.items()):
    _REST[_j] = _p
for _left, _right in NTU25.left_right:  # mirror the left side to the right side
    _REST[_right] = _REST[_left] * np.array([-1.0, 1.0, 1.0])


def _fk_tree(root: int = SPINE_BASE) -> tuple[list[int], np.ndarray]:
    """Breadth-first order and parents of the NTU25 edge graph re-rooted at `root` (same bones)."""
    neighbours: dict[int, list[int]] = {j: [] for j in range(NUM_JOINTS)}
    for a, b in NTU25.edges:
        neighbours[a].append(b)
        neighbours[b].append(a)
    parent = np.full(NUM_JOINTS, -1)
    order, queue = [root], [root]
    while queue:
        j = queue.pop(0)
        for k in sorted(neighbours[j]):
            if k != root and parent[k] < 0:
                parent[k] = j
                order.append(k)
                queue.append(k)
    return order, parent


FK_ORDER, FK_PARENT = _fk_tree()

# Which body-proportion factor scales each bone (the bone ending at the joint).
_BONE_GROUP = np.zeros(NUM_JOINTS, dtype=np.int64)  # 0 trunk, 1 width, 2 arm, 3 leg
for _j in (L_SHOULDER, R_SHOULDER, L_HIP, R_HIP):
    _BONE_GROUP[_j] = 1
for _j in LEFT_ARM + RIGHT_ARM:
    if _j not in (L_SHOULDER, R_SHOULDER):
        _BONE_GROUP[_j] = 2
for _j in LEFT_LEG + RIGHT_LEG:
    if _j not in (L_HIP, R_HIP):
        _BONE_GROUP[_j] = 3


class SubjectSplit:
    """The cross-subject split of a generated dataset with `subjects` (per sample) and `train_subjects`."""

    subjects: np.ndarray
    train_subjects: tuple[int, ...]

    @property
    def train_indices(self) -> np.ndarray:
        return np.flatnonzero(np.isin(self.subjects, self.train_subjects))

    @property
    def test_indices(self) -> np.ndarray:
        return np.flatnonzero(~np.isin(self.subjects, self.train_subjects))


@dataclass
class SyntheticData(SubjectSplit):
    """A generated dataset. data (N, 3, T, 25, 2) float32; actionlets (N, T, 25) bool for person 0."""

    data: np.ndarray
    labels: np.ndarray
    subjects: np.ndarray
    actionlets: np.ndarray
    class_names: tuple[str, ...]
    train_subjects: tuple[int, ...]
    arguments: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------- rotations

def _rot(axis: str, angle: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) about a body axis by `angle` radians (right-handed)."""
    c, s = np.cos(angle), np.sin(angle)
    one, zero = np.ones_like(angle), np.zeros_like(angle)
    if axis == "x":
        rows = [[one, zero, zero], [zero, c, -s], [zero, s, c]]
    elif axis == "y":
        rows = [[c, zero, s], [zero, one, zero], [-s, zero, c]]
    else:
        rows = [[c, -s, zero], [s, c, zero], [zero, zero, one]]
    return np.stack([np.stack(r, axis=-1) for r in rows], axis=-2)


def _deg(x: Any) -> Any:
    return np.deg2rad(x)


# Sign conventions in the body frame (x left, y up, z back; the subject faces -z), for a bone hanging down:
#   rot x(+a): swings it forward (shoulder/hip flexion); rot x(-a) on a shin: knee flexion;
#   rot z(+a): swings it towards +x (left arm abduction, right leg adduction); rot z(-a): towards -x.
#   rot x(-a) on the upright spine: forward bend.


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _envelope(p: np.ndarray, ramp: float = 0.2) -> np.ndarray:
    """0 outside the action window p in [0, 1], rising and falling smoothly over `ramp` of it."""
    inside = (p >= 0) & (p <= 1)
    return np.where(inside, _smoothstep(p / ramp) * _smoothstep((1.0 - p) / ramp), 0.0)


# ------------------------------------------------------------------------------------------- class motions

@dataclass
class _Motion:
    """Local rotations per joint (n, T, 3, 3), a body-frame root offset (n, T, 3), a flight height (n, T)."""

    rotations: dict[int, np.ndarray]
    root_offset: np.ndarray
    lift: np.ndarray


@dataclass
class _Timing:
    p: np.ndarray  # (n, T) progress through the action window (outside [0, 1] = not acting)
    phase: np.ndarray  # (n, 1) oscillation phase
    amp: np.ndarray  # (n, 1) amplitude factor
    cycles: np.ndarray  # (n, 1) oscillation-frequency factor
    rng: np.random.Generator

    def uniform(self, low: float, high: float) -> np.ndarray:
        return self.rng.uniform(low, high, size=(self.p.shape[0], 1))


def _wave(tm: _Timing, side: int) -> dict[int, np.ndarray]:
    """Upper arm raised sideways, forearm up and swinging side to side (side +1 left, -1 right)."""
    e = _envelope(tm.p, 0.2)
    osc = np.sin(2 * np.pi * 3.0 * tm.cycles * tm.p + tm.phase)
    shoulder, elbow = (L_ELBOW, L_WRIST) if side > 0 else (R_ELBOW, R_WRIST)
    raise_angle = e * _deg(tm.uniform(75, 105)) * tm.amp
    forearm = e * (_deg(tm.uniform(70, 95)) + _deg(25) * tm.amp * osc)
    return {shoulder: _rot("z", side * raise_angle) @ _rot("x", e * _deg(15)),
            elbow: _rot("z", side * forearm)}


def _punch(tm: _Timing) -> dict[int, np.ndarray]:
    """Right fist from a guard, fast repeated straight punches forward."""
    e = _envelope(tm.p, 0.15)
    extension = (0.5 + 0.5 * np.sin(2 * np.pi * 3.0 * tm.cycles * tm.p + tm.phase)) ** 3  # sharp peaks
    flex = e * (_deg(30) + _deg(55) * tm.amp * extension)
    elbow = e * (_deg(115) - _deg(110) * extension)
    return {R_ELBOW: _rot("y", -e * _deg(10)) @ _rot("x", flex), R_WRIST: _rot("x", elbow)}


def _reach(tm: _Timing) -> dict[int, np.ndarray]:
    """Right arm slowly stretched forward (a little up or down), held, brought back; once."""
    e = _envelope(tm.p, 0.35)
    flex = e * _deg(tm.uniform(70, 115)) * tm.amp
    return {R_ELBOW: _rot("y", -e * _deg(10)) @ _rot("x", flex), R_WRIST: _rot("x", e * _deg(tm.uniform(5, 30)))}


def _kick(tm: _Timing) -> dict[int, np.ndarray]:
    """Right leg: thigh forward with the knee chambered, then the shin snaps forward; one or two kicks."""
    e = _envelope(tm.p, 0.2)
    g = 0.5 - 0.5 * np.cos(2 * np.pi * 1.5 * tm.cycles * tm.p + 0.3 * tm.phase)
    thigh = e * (_deg(25) + _deg(45) * tm.amp * g)
    knee = e * (_deg(75) - _deg(70) * g)
    return {R_KNEE: _rot("x", thigh), R_ANKLE: _rot("x", -knee), SPINE_MID: _rot("x", e * _deg(8))}


def _squat(tm: _Timing) -> dict[int, np.ndarray]:
    """Both knees and hips bend with the trunk leaning forward; one or two squats (grounding lowers the body)."""
    e = _envelope(tm.p, 0.1)
    reps = np.where(tm.rng.random((tm.p.shape[0], 1)) < 0.5, 1.0, 2.0)
    h = e * (0.5 - 0.5 * np.cos(2 * np.pi * reps * np.clip(tm.p, 0, 1)))
    depth = h * _deg(tm.uniform(70, 100)) * tm.amp
    rotations = {SPINE_MID: _rot("x", -0.45 * depth)}
    for knee, ankle in ((L_KNEE, L_ANKLE), (R_KNEE, R_ANKLE)):
        rotations[knee] = _rot("x", depth)
        rotations[ankle] = _rot("x", -depth)  # shin back to vertical, foot stays flat
    return rotations


def _bow(tm: _Timing) -> dict[int, np.ndarray]:
    """Trunk bends forward at the hips and comes back; the arms keep hanging roughly down."""
    e = _envelope(tm.p, 0.3)
    bend = e * _deg(tm.uniform(40, 70)) * tm.amp
    hang = _rot("x", 0.7 * bend)
    return {SPINE_MID: _rot("x", -bend), NECK: _rot("x", -0.2 * bend), L_ELBOW: hang, R_ELBOW: hang}


def _clap(tm: _Timing) -> dict[int, np.ndarray]:
    """Both forearms in front of the chest, the hands repeatedly brought together."""
    e = _envelope(tm.p, 0.15)
    together = 0.5 + 0.5 * np.sin(2 * np.pi * 3.5 * tm.cycles * tm.p + tm.phase)
    flex = e * _deg(tm.uniform(40, 60))
    inward = e * (_deg(5) + _deg(22) * tm.amp * together)
    elbow = e * _deg(tm.uniform(50, 70))
    return {L_ELBOW: _rot("y", inward) @ _rot("x", flex), R_ELBOW: _rot("y", -inward) @ _rot("x", flex),
            L_WRIST: _rot("x", elbow), R_WRIST: _rot("x", elbow)}


def _nod(tm: _Timing) -> dict[int, np.ndarray]:
    """Head nods forward a few times (small motion of two joints)."""
    e = _envelope(tm.p, 0.15)
    nod = e * tm.amp * (_deg(8) + _deg(22) * (0.5 - 0.5 * np.cos(2 * np.pi * 3.0 * tm.cycles * tm.p)))
    return {NECK: _rot("x", -nod), HEAD: _rot("x", -0.5 * nod)}


def _raise_both(tm: _Timing) -> dict[int, np.ndarray]:
    """Both arms raised forward and up above the head, held, lowered."""
    e = _envelope(tm.p, 0.3)
    flex = e * _deg(tm.uniform(140, 170)) * np.minimum(tm.amp, 1.1)
    spread = e * _deg(tm.uniform(0, 20))
    return {L_ELBOW: _rot("z", spread) @ _rot("x", flex), R_ELBOW: _rot("z", -spread) @ _rot("x", flex),
            L_WRIST: _rot("x", e * _deg(10)), R_WRIST: _rot("x", e * _deg(10))}


def _side_step_rotations(tm: _Timing, direction: np.ndarray) -> dict[int, np.ndarray]:
    """Leading leg swings out in the first half of the step, the trailing leg follows in the second half."""
    pc = np.clip(tm.p, 0, 1)
    first = np.sin(np.pi * np.clip(2 * pc, 0, 1)) * (tm.p >= 0) * (tm.p <= 1)
    second = np.sin(np.pi * np.clip(2 * pc - 1, 0, 1)) * (tm.p >= 0) * (tm.p <= 1)
    lead_left = direction > 0  # stepping towards +x (the subject's left) leads with the left leg
    left_angle = np.where(lead_left, first * _deg(22), second * _deg(12))
    right_angle = np.where(lead_left, second * _deg(12), first * _deg(22))
    return {L_KNEE: _rot("z", direction * left_angle * tm.amp), R_KNEE: _rot("z", direction * right_angle * tm.amp)}


def _jump_rotations(tm: _Timing) -> dict[int, np.ndarray]:
    """Crouch, take off with the arms swinging up, land with a small crouch."""
    pc = np.clip(tm.p, 0, 1)
    inside = (tm.p >= 0) & (tm.p <= 1)
    crouch = inside * (np.sin(np.pi * np.clip(pc / 0.35, 0, 1)) * _deg(45)
                       + np.sin(np.pi * np.clip((pc - 0.75) / 0.25, 0, 1)) * _deg(30))
    flight = inside * np.sin(np.pi * np.clip((pc - 0.3) / 0.5, 0, 1))
    arms = flight * _deg(100) * tm.amp
    rotations = {SPINE_MID: _rot("x", -0.3 * crouch), L_ELBOW: _rot("x", arms), R_ELBOW: _rot("x", arms)}
    for knee, ankle in ((L_KNEE, L_ANKLE), (R_KNEE, R_ANKLE)):
        rotations[knee] = _rot("x", crouch)
        rotations[ankle] = _rot("x", -crouch)
    return rotations


def _class_motion(label: int, tm: _Timing) -> _Motion:
    n, t = tm.p.shape
    zero_offset, zero_lift = np.zeros((n, t, 3)), np.zeros((n, t))
    name = CLASS_NAMES[label]
    simple: dict[str, Callable[[_Timing], dict[int, np.ndarray]]] = {
        "wave_right": lambda m: _wave(m, -1), "wave_left": lambda m: _wave(m, +1), "punch_right": _punch,
        "reach_right": _reach, "kick_right": _kick, "squat": _squat, "bow": _bow, "clap": _clap,
        "nod_head": _nod, "raise_both_arms": _raise_both,
    }
    if name in simple:
        return _Motion(simple[name](tm), zero_offset, zero_lift)
    if name == "side_step":
        direction = np.where(tm.rng.random((n, 1)) < 0.5, -1.0, 1.0)
        offset = zero_offset.copy()
        offset[..., 0] = direction * tm.uniform(0.25, 0.45) * tm.amp * _smoothstep(tm.p)
        return _Motion(_side_step_rotations(tm, direction), offset, zero_lift)
    if name == "jump":
        u = np.clip((tm.p - 0.35) / 0.4, 0, 1)
        lift = tm.uniform(0.12, 0.28) * tm.amp * 4 * u * (1 - u)
        return _Motion(_jump_rotations(tm), zero_offset, lift)
    raise AssertionError(name)


# Joints each class is allowed to claim in its actionlet (the rest of the body only does idle motion).
CLASS_JOINTS: dict[str, tuple[int, ...]] = {
    "wave_right": RIGHT_ARM, "wave_left": LEFT_ARM, "punch_right": RIGHT_ARM, "reach_right": RIGHT_ARM,
    "kick_right": RIGHT_LEG + TRUNK, "squat": TRUNK + LEFT_LEG + RIGHT_LEG,
    "bow": TRUNK + LEFT_ARM + RIGHT_ARM, "clap": LEFT_ARM + RIGHT_ARM, "nod_head": (NECK, HEAD),
    "raise_both_arms": LEFT_ARM + RIGHT_ARM, "side_step": ALL_JOINTS, "jump": ALL_JOINTS,
}
# Base duration of the action window (fraction of the clip at speed 1).
_BASE_DURATION = {"side_step": 0.55, "jump": 0.55}


# ------------------------------------------------------------------------------------ bodies and kinematics

def _subject_scales(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, 4) factors: overall height times trunk, width, arm and leg proportions."""
    height = rng.uniform(0.86, 1.12, size=(n, 1))
    parts = np.clip(rng.normal(1.0, 0.05, size=(n, 4)), 0.88, 1.12)
    return height * parts


def _bones(scales: np.ndarray) -> np.ndarray:
    """Rest bone vectors (n, V, 3): rest offset to the FK parent times the bone group's factor."""
    rest_bones = _REST - _REST[np.maximum(FK_PARENT, 0)]
    rest_bones[SPINE_BASE] = 0.0
    factor = scales[:, _BONE_GROUP]  # (n, V)
    return rest_bones[None] * factor[..., None]


def _forward_kinematics(bones: np.ndarray, rotations: dict[int, np.ndarray], t: int) -> np.ndarray:
    """Joint positions (n, T, V, 3) relative to the spine base, from local rotations along FK_ORDER (eq.: p_j =
    p_parent + W_j b_j, W_j = W_parent Q_j)."""
    n = bones.shape[0]
    eye = np.broadcast_to(np.eye(3), (n, t, 3, 3))
    world: dict[int, np.ndarray] = {SPINE_BASE: rotations.get(SPINE_BASE, eye)}
    pos = np.zeros((n, t, NUM_JOINTS, 3))
    for j in FK_ORDER[1:]:
        parent = int(FK_PARENT[j])
        w = world[parent] @ rotations[j] if j in rotations else world[parent]
        world[j] = w
        pos[:, :, j] = pos[:, :, parent] + (w @ bones[:, None, j, :, None])[..., 0]
    return pos


def _idle_rotations(rng: np.random.Generator, n: int, t: int, scale: float = 1.0, lean: float = 10.0,
                    arm: float = 20.0, time: np.ndarray | None = None) -> dict[int, np.ndarray]:
    """Breathing, small arm swing and head motion, plus a random static stance: trunk and head lean (up to
    `lean` degrees), arms out/forward and elbows bent (up to ~`arm` degrees), feet apart. `time` (1, t): the
    frames in clip units (default: one clip, 0..1)."""
    time = np.linspace(0.0, 1.0, t)[None] if time is None else time

    def wobble(max_deg: float, max_cycles: float) -> np.ndarray:
        amp = rng.uniform(0.3, 1.0, size=(n, 1)) * _deg(max_deg) * scale
        freq = rng.uniform(0.3, max_cycles, size=(n, 1))
        return amp * np.sin(2 * np.pi * freq * time + rng.uniform(0, 2 * np.pi, size=(n, 1)))

    def static(low: float, high: float) -> np.ndarray:
        return np.broadcast_to(_deg(rng.uniform(low, high, size=(n, 1))), (n, t))

    rot = {
        SPINE_MID: _rot("x", static(-lean, lean / 2) + wobble(2.0, 1.5)) @ _rot("z", static(-lean / 2, lean / 2)
                                                                              + wobble(1.5, 1.0)),
        NECK: _rot("x", static(-lean, lean / 2) + wobble(4.0, 1.0)) @ _rot("z", wobble(3.0, 1.0)),
        L_ELBOW: _rot("z", static(3, 4 + arm) + wobble(2.0, 1.0)) @ _rot("x", static(-arm / 2, arm)
                                                                       + wobble(4.0, 1.5)),
        R_ELBOW: _rot("z", -static(3, 4 + arm) + wobble(2.0, 1.0)) @ _rot("x", static(-arm / 2, arm)
                                                                        + wobble(4.0, 1.5)),
        L_WRIST: _rot("x", static(3, 5 + 2 * arm) + wobble(4.0, 1.5)),
        R_WRIST: _rot("x", static(3, 5 + 2 * arm) + wobble(4.0, 1.5)),
        L_KNEE: _rot("z", static(0, 7)),
        R_KNEE: _rot("z", -static(0, 7)),
    }
    return rot


def _distractor(rng: np.random.Generator, n: int, t: int, name: str, prob: float) -> dict[int, np.ndarray]:
    """With probability `prob`, an unrelated slow movement of a limb the class does not use (an arm lifted
    and bent, as if touching the face or a pocket), or a sideways trunk lean when the class uses both arms.
    It belongs to the nuisance, not to the actionlet."""
    time = np.linspace(0.0, 1.0, t)[None]
    active = (rng.random((n, 1)) < prob).astype(float)
    start = rng.uniform(-0.2, 0.7, size=(n, 1))
    window = _envelope((time - start) / rng.uniform(0.3, 0.7, size=(n, 1)), 0.3) * active
    free_arms = [(shoulder, elbow, side) for shoulder, elbow, side, part in
                 ((L_ELBOW, L_WRIST, 1.0, LEFT_ARM), (R_ELBOW, R_WRIST, -1.0, RIGHT_ARM))
                 if not set(part) & set(CLASS_JOINTS[name])]
    if not free_arms:
        lean = window * _deg(rng.uniform(5, 15, size=(n, 1))) * np.where(rng.random((n, 1)) < 0.5, -1, 1)
        return {SPINE_MID: _rot("z", lean)}
    pick = rng.integers(0, len(free_arms), size=(n, 1))
    rotations: dict[int, np.ndarray] = {}
    for k, (shoulder, elbow, side) in enumerate(free_arms):
        w = window * (pick == k)
        flex = w * _deg(rng.uniform(15, 70, size=(n, 1)))
        out = w * _deg(rng.uniform(0, 30, size=(n, 1))) * side
        bend = w * _deg(rng.uniform(30, 120, size=(n, 1)))
        rotations[shoulder] = _rot("z", out) @ _rot("x", flex)
        rotations[elbow] = _rot("x", bend)
    return rotations


def _idle_sway(rng: np.random.Generator, n: int, t: int, scale: float = 1.0,
               time: np.ndarray | None = None) -> np.ndarray:
    """Slow body sway (n, T, 3) in x and z, up to ~2 cm; `time` as in _idle_rotations."""
    time = np.linspace(0.0, 1.0, t)[None] if time is None else time
    sway = np.zeros((n, t, 3))
    for axis in (0, 2):
        amp = rng.uniform(0.003, 0.02, size=(n, 1)) * scale
        sway[..., axis] = amp * np.sin(2 * np.pi * rng.uniform(0.2, 1.0, size=(n, 1)) * time
                                       + rng.uniform(0, 2 * np.pi, size=(n, 1)))
    return sway


def _ground(pos: np.ndarray, rest_ankle_y: np.ndarray) -> np.ndarray:
    """Vertical shift (n, T) that keeps the lower ankle at its rest height."""
    lowest = np.minimum(pos[:, :, L_ANKLE, 1], pos[:, :, R_ANKLE, 1])
    return rest_ankle_y[:, None] - lowest


def _merge(a: dict[int, np.ndarray], b: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
    """Local rotations a then b at each joint (class motion on top of the idle pose)."""
    out = dict(b)
    for j, rot in a.items():
        out[j] = b[j] @ rot if j in b else rot
    return out


def _place(pos: np.ndarray, yaw: np.ndarray, tilt: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Body frame -> camera frame: turn by `yaw` about y, tilt about x, translate (n, 3)."""
    rot = _rot("x", tilt) @ _rot("y", yaw)  # (n, 3, 3)
    return pos @ np.swapaxes(rot, -1, -2)[:, None] + shift[:, None, None, :]


# ------------------------------------------------------------------------------------------------ generator

def generate_synthetic(
    num_samples_per_class_per_subject: int = 20,
    num_subjects: int = 10,
    frames: int = 50,
    seed: int = 0,
    num_train_subjects: int = 7,
    view_range_deg: float = 90.0,
    tilt_range_deg: float = 20.0,
    drift: float = 0.6,
    turn_range_deg: float = 40.0,
    distractor_prob: float = 0.7,
    speed_range: tuple[float, float] = (0.7, 1.4),
    noise_std: float = 0.01,
    second_person_prob: float = 0.25,
) -> SyntheticData:
    """Generate the synthetic dataset: N = classes x subjects x per-class-per-subject samples.

    Subjects 0..num_train_subjects-1 form the "xsub" training set, the rest the test set. Body proportions
    are drawn per subject (independent of the sample counts), every other factor per sample. The view angle
    is uniform in +-view_range_deg about the vertical axis.
    """
    if num_samples_per_class_per_subject < 1 or frames < 2 or not 0 < num_train_subjects < num_subjects:
        raise ValueError("need num_samples_per_class_per_subject >= 1, frames >= 2 and "
                         f"0 < num_train_subjects < num_subjects (got {num_samples_per_class_per_subject}, "
                         f"{frames}, {num_train_subjects}, {num_subjects})")
    arguments = dict(num_samples_per_class_per_subject=num_samples_per_class_per_subject,
                     num_subjects=num_subjects, frames=frames, seed=seed, num_train_subjects=num_train_subjects,
                     view_range_deg=view_range_deg, tilt_range_deg=tilt_range_deg, drift=drift,
                     turn_range_deg=turn_range_deg, distractor_prob=distractor_prob,
                     speed_range=list(speed_range), noise_std=noise_std,
                     second_person_prob=second_person_prob)
    subject_seq, sample_seq = np.random.SeedSequence(seed).spawn(2)
    subject_scales = _subject_scales(np.random.default_rng(subject_seq), num_subjects)
    rng = np.random.default_rng(sample_seq)

    k, c, t = num_samples_per_class_per_subject, len(CLASS_NAMES), frames
    subjects = np.repeat(np.arange(num_subjects), c * k)
    labels = np.tile(np.repeat(np.arange(c), k), num_subjects)
    n_total = len(labels)
    data = np.zeros((n_total, 3, t, NUM_JOINTS, 2), dtype=np.float32)
    actionlets = np.zeros((n_total, t, NUM_JOINTS), dtype=bool)
    time = np.linspace(0.0, 1.0, t)[None]

    for label, name in enumerate(CLASS_NAMES):
        idx = np.flatnonzero(labels == label)
        n = len(idx)
        scales = subject_scales[subjects[idx]] * rng.normal(1.0, 0.01, size=(n, 4))
        bones = _bones(scales)

        speed = rng.uniform(*speed_range, size=(n, 1))
        duration = np.clip(_BASE_DURATION.get(name, 0.65) * rng.uniform(0.8, 1.2, size=(n, 1)) / speed, 0.3, 0.98)
        start = rng.uniform(0.0, 1.0, size=(n, 1)) * (1.0 - duration)
        timing = _Timing(p=(time - start) / duration, phase=rng.uniform(0, 2 * np.pi, size=(n, 1)),
                         amp=rng.uniform(0.8, 1.2, size=(n, 1)), cycles=rng.uniform(0.8, 1.2, size=(n, 1)),
                         rng=rng)
        motion = _class_motion(label, timing)
        idle = _merge(_distractor(rng, n, t, name, distractor_prob), _idle_rotations(rng, n, t))
        sway = _idle_sway(rng, n, t)
        heading = rng.uniform(0, 2 * np.pi, size=(n, 1))
        walked = rng.uniform(0, drift, size=(n, 1)) * _smoothstep(
            (time - rng.uniform(-0.5, 0.5, size=(n, 1))) / rng.uniform(0.5, 1.5, size=(n, 1)))
        sway[..., 0] += walked * np.cos(heading)  # shuffling about: a slow drift on the floor
        sway[..., 2] += walked * np.sin(heading)

        rest_ankle_y = _forward_kinematics(bones, {}, 1)[:, 0, L_ANKLE, 1]
        acting = _forward_kinematics(bones, _merge(motion.rotations, idle), t)
        neutral = _forward_kinematics(bones, idle, t)
        root_acting = motion.root_offset + sway
        root_acting[..., 1] += _ground(acting, rest_ankle_y) + motion.lift
        root_neutral = sway.copy()
        root_neutral[..., 1] += _ground(neutral, rest_ankle_y)

        # Actionlet: class-induced displacement in the root-fixed frame, or class-induced whole-body motion.
        displaced = np.linalg.norm(acting - neutral, axis=-1) > ACTIONLET_THRESHOLD
        root_motion = root_acting - root_neutral
        root_speed = np.linalg.norm(np.diff(root_motion, axis=1, prepend=root_motion[:, :1]), axis=-1)
        allowed = np.zeros(NUM_JOINTS, dtype=bool)
        allowed[list(CLASS_JOINTS[name])] = True
        whole_body = (root_speed > ROOT_SPEED_THRESHOLD) | (motion.lift > ACTIONLET_THRESHOLD)
        actionlets[idx] = (displaced | whole_body[..., None]) & allowed

        yaw = _deg(rng.uniform(-view_range_deg, view_range_deg, size=n))
        tilt = _deg(rng.uniform(-tilt_range_deg, tilt_range_deg, size=n))
        shift = np.stack([rng.uniform(-0.5, 0.5, n), rng.uniform(-0.15, 0.25, n), rng.uniform(2.6, 3.6, n)], -1)
        # The subject also turns slowly during the clip (up to turn_range_deg), about their own spine base.
        turn = _deg(rng.uniform(-turn_range_deg, turn_range_deg, size=(n, 1))) * _smoothstep(
            (time - rng.uniform(-0.3, 0.6, size=(n, 1))) / rng.uniform(0.3, 1.0, size=(n, 1)))
        body = acting @ np.swapaxes(_rot("y", turn), -1, -2) + root_acting[:, :, None, :]
        person0 = _place(body, yaw, tilt, shift)

        # Optional second person: another body, idle only, standing beside the first one.
        second = rng.random(n) < second_person_prob
        other_bones = _bones(_subject_scales(rng, n))
        other = _forward_kinematics(other_bones, _idle_rotations(rng, n, t, 1.5), t)
        other_rest_y = _forward_kinematics(other_bones, {}, 1)[:, 0, L_ANKLE, 1]
        other_root = _idle_sway(rng, n, t, 1.5)
        other_root[..., 1] += _ground(other, other_rest_y)
        side = np.where(rng.random(n) < 0.5, -1.0, 1.0) * rng.uniform(0.7, 1.2, n)
        other_shift = shift + np.stack([side, np.zeros(n), rng.uniform(-0.3, 0.3, n)], -1)
        other_yaw = yaw + _deg(rng.uniform(-30, 30, n))
        person1 = _place(other + other_root[:, :, None, :], other_yaw, tilt, other_shift)

        both = np.stack([person0, person1], axis=-1)  # (n, T, V, 3, M)
        both = both + rng.normal(0.0, noise_std, size=both.shape) if noise_std > 0 else both
        both[~second, ..., 1] = 0.0
        data[idx] = both.transpose(0, 3, 1, 2, 4).astype(np.float32)

    return SyntheticData(data=data, labels=labels.astype(np.int64), subjects=subjects.astype(np.int64),
                         actionlets=actionlets, class_names=CLASS_NAMES,
                         train_subjects=tuple(range(num_train_subjects)), arguments=arguments)


def normalize_view(data: np.ndarray) -> np.ndarray:
    """The CrosSCLR/AimCLR preparation of NTU applied to generated sequences: every body centred on its
    spine-shoulder joint (21) in every frame, then rotated about the vertical axis in every frame so that its
    shoulders lie on x. Absent persons stay zero. (N, 3, T, 25, M) -> same shape.
    """

    bodies = data.transpose(0, 2, 4, 3, 1)  # (N, T, M, V, 3)
    present = np.abs(bodies).sum(axis=(3, 4), keepdims=True) > 0
    centred = (bodies - bodies[:, :, :, SPINE_SHOULDER:SPINE_SHOULDER + 1]) * present
    out = np.stack([align_shoulders_per_frame(seq) for seq in centred]) * present
    return np.ascontiguousarray(out.transpose(0, 4, 1, 3, 2), dtype=np.float32)


def prepare_synthetic(out_dir: str | Path, recipe: str = "aimclr", **kwargs: Any) -> Path:
    """Generate the synthetic dataset and write it in the prepared format (split "xsub", extra "actionlets").

    recipe "aimclr" (default) prepares the sequences as the CrosSCLR/AimCLR/ActCLR recipe prepares NTU
    (`normalize_view`: per-frame centring and shoulder alignment), so that models see what they would see on
    prepared NTU; "raw" keeps the generator's camera coordinates (view, drift and translation included).
    """

    if recipe not in ("aimclr", "raw"):
        raise ValueError(f"recipe must be 'aimclr' or 'raw', got '{recipe}'")
    synth = generate_synthetic(**kwargs)
    if recipe == "aimclr":
        synth.data = normalize_view(synth.data)
    n, _, t, _, _ = synth.data.shape
    meta = PreparedMeta(
        dataset="synthetic",
        layout=NTU25,
        class_names=list(synth.class_names),
        labels=synth.labels,
        lengths=np.full(n, t, dtype=np.int64),
        sample_names=[f"S{s:03d}A{a:03d}I{i:04d}" for i, (s, a) in enumerate(zip(synth.subjects, synth.labels))],
        splits={"xsub": {"train": synth.train_indices, "test": synth.test_indices}},
        provenance={"generator": "skelssl.data.synthetic.generate_synthetic", "recipe": recipe, **synth.arguments,
                    "train_subjects": list(synth.train_subjects)},
    )
    return write_prepared(out_dir, synth.data, meta, extra={"actionlets": synth.actionlets.astype(np.uint8)})
