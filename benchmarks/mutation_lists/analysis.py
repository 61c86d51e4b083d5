"""Issue 23, the analyses: tests that passed whatever the code did (`1 <= kappa <= 30`, picture file sizes)."""

A = "tests/analysis/test_analyze_commands.py::"
P = "tests/analysis/test_pictures.py::"
ENTRIES = [
    dict(name="spectrum-backbone-not-projection", path="skelssl/analysis/strength.py",
         old="        return F.normalize(self.projector(self.encoder(x)), dim=1)\n",
         new="        return F.normalize(self.encoder(x), dim=1)\n",
         tests=(A + "test_the_spectrum_embeds_the_test_part_in_eval_mode",),
         why="κ was measured on the backbone feature, not on the contrastive embedding f(x) of ActCLR+ eq. 1"),
    dict(name="features-train-mode", path="skelssl/evaluation/features.py",
         old="    encoder.eval()\n", new="    encoder.train()\n",
         tests=(A + "test_the_spectrum_embeds_the_test_part_in_eval_mode",),
         why="the spectrum's (and every probe's) features used batch statistics and moved the running ones"),
    dict(name="spectrum-wrong-epsilon", path="skelssl/analysis/spectrum.py",
         old='    return {"kappa": cluster_count(eigenvalues, epsilon),',
         new='    return {"kappa": cluster_count(eigenvalues),',
         tests=(A + "test_the_spectrum_records_the_cluster_count_and_diameter_of_what_it_embeds",),
         why="κ ignored --epsilon (always 0.1)"),
    dict(name="spectrum-max-nodes-dropped", path="skelssl/analysis/strength.py",
         old="    z, labels = embed_test_part(method, device, max_nodes)\n",
         new="    z, labels = embed_test_part(method, device)\n",
         tests=(A + "test_the_spectrum_records_the_cluster_count_and_diameter_of_what_it_embeds",),
         why="--max-nodes was ignored (a 1000-node graph where the user asked for fewer)"),
    dict(name="heatmap-frames-for-joints", path="skelssl/analysis/pictures.py",
         old="    for ax, values, xlabel in ((left, joints, \"joint\"), (right, frames, \"frame (4-frame bins)\")):\n",
         new="    for ax, values, xlabel in ((left, frames, \"joint\"), (right, frames, \"frame (4-frame bins)\")):\n",
         tests=(P + "test_pictures_show_the_counted_actionlets",),
         why="the joint heat map drew the frame frequencies (any PNG over 5 kB passed)"),
    dict(name="actionlet-joint-and-frame-precision-swapped", path="skelssl/analysis/actionlets.py",
         old='        "joint_precision": pooled_precision(1),\n', new='        "joint_precision": pooled_precision(2),\n',
         tests=("tests/test_analysis.py::test_actionlet_scores_hand_counted",),
         why="the joint precision pooled over joints instead of frames (space and time errors confused)"),
]
