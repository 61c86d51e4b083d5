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
