"""Issue 24, the UTKinect-Action3D reader (skelssl.data.utkinect)."""

TESTS = "tests/data/test_utkinect.py::"
READER = "skelssl/data/utkinect.py"
ENTRIES = [
    dict(name="utkinect-repeated-ids-kept", path=READER,
         old="    first = np.r_[True, np.diff(ids) > 0]\n", new="    first = np.ones(len(ids), dtype=bool)\n",
         tests=(TESTS + "test_joints_keep_the_first_line_of_a_repeated_frame_id",
                TESTS + "test_instances_by_frame_id_cross_subject_and_unannotated"),
         why="a frame id written twice entered the instance twice (a stalled frame)"),
    dict(name="utkinect-range-exclusive-end", path=READER,
         old="    inside = (ids >= first) & (ids <= last)\n", new="    inside = (ids >= first) & (ids < last)\n",
         tests=(TESTS + "test_instances_by_frame_id_cross_subject_and_unannotated",),
         why="the label's last frame id left out of the instance"),
    dict(name="utkinect-split-even-subjects-train", path=READER,
         old="        train = np.array([subjects[i] % 2 == 1 for i in kept], dtype=bool)\n",
         new="        train = np.array([subjects[i] % 2 == 0 for i in kept], dtype=bool)\n",
         tests=(TESTS + "test_instances_by_frame_id_cross_subject_and_unannotated",),
         why="the cross-subject split inverted"),
    dict(name="utkinect-not-centred", path=READER,
         old="    clip = clip - clip[0, SPINE_JOINT]  # raw Kinect coordinates sit ~2 m from the camera\n",
         new="",
         tests=(TESTS + "test_instances_by_frame_id_cross_subject_and_unannotated",),
         why="instances left at the camera's coordinates (not centred on the first frame's spine)"),
]

SBU = "tests/data/test_sbu.py::"
ENTRIES += [
    dict(name="sbu-x-not-flipped", path="skelssl/data/sbu.py",
         old="    world_mm = np.stack([1280.0 - 2560.0 * normalised[..., 0], 960.0 - 1920.0 * normalised[..., 1],\n",
         new="    world_mm = np.stack([2560.0 * normalised[..., 0] - 1280.0, 960.0 - 1920.0 * normalised[..., 1],\n",
         tests=(SBU + "test_denormalised_to_metres_by_the_readme_formula",),
         why="X not mirrored as the README's formula does: left and right joints swap sides"),
    dict(name="sbu-people-centred-apart", path="skelssl/data/sbu.py",
         old="    joints = joints - joints[0, 0, TORSO_JOINT]  # one origin for both people: their distance is the "
             "action\n",
         new="    joints = joints - joints[0, :, TORSO_JOINT][None, :, None]\n",
         tests=(SBU + "test_folds_two_people_and_centring",),
         why="each person centred on their own torso: the distance between the two, what approaching is, lost"),
    dict(name="sbu-fold-test-train-swapped", path="skelssl/data/sbu.py",
         old='        splits = {f"fold{k + 1}": {"train": np.nonzero(folds != k)[0], "test": np.nonzero(folds == k)[0]}\n',
         new='        splits = {f"fold{k + 1}": {"train": np.nonzero(folds == k)[0], "test": np.nonzero(folds != k)[0]}\n',
         tests=(SBU + "test_folds_two_people_and_centring",),
         why="a fold's sets used for training and the other four for testing"),
]
