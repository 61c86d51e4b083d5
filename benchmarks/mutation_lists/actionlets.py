"""Issue 23, actionlets of ActCLR / ActCLR+: the map (eq37 | official), the analysis in training mode, fresh
prototypes and the hinge-active log."""

PARTS = "tests/methods/test_actclr_parts.py::"
METHOD = "tests/methods/test_actclr.py::"
REGISTRATION = "tests/methods/test_actclr_registration.py::"
ANALYSIS = "tests/analysis/test_actionlet_analysis.py::"
ACTIONLET = "skelssl/methods/actclr/actionlet.py"
PLUS = "skelssl/methods/actclr/actclr_plus.py"
ENTRIES = [
    dict(name="actionlet-analysis-eval-mode", path="skelssl/analysis/actionlets.py",
         old="    method.train(True).to(device)\n", new="    method.eval().to(device)\n",
         tests=(ANALYSIS + "test_analysis_uses_batch_statistics_of_training_size_batches_not_running_statistics",),
         why="the analysis normalised with running statistics learnt on sheared key views, not the batch "
             "statistics training computes actionlets with (the 23.9 % = chance figure)"),
    dict(name="actionlet-analysis-short-last-batch", path="skelssl/analysis/actionlets.py",
         old="        fill = order[:size - len(new)]  # rows seen already, so that the batch has the training size\n",
         new="        fill = order[:0]\n",
         tests=(ANALYSIS + "test_training_size_batches_cover_every_row_once_with_full_batches",),
         why="the last batch was not of the training size (other batch statistics than training's)"),
    dict(name="actionlet-analysis-in-dataset-order", path="skelssl/analysis/actionlets.py",
         old="    order = np.random.default_rng(seed).permutation(n)\n", new="    order = np.arange(n)\n",
         tests=(ANALYSIS + "test_training_size_batches_cover_every_row_once_with_full_batches",),
         why="bug fixed: the analysis batched the test set in dataset order (one class per batch on a "
             "class-sorted set), not shuffled as training batches"),
    dict(name="actionlet-analysis-rows-misplaced", path="skelssl/analysis/actionlets.py",
         old="            masks[torch.as_tensor(rows[kept])] = mask\n",
         new="            masks[torch.as_tensor(np.sort(rows[kept]))] = mask\n",
         tests=(ANALYSIS + "test_analysis_uses_batch_statistics_of_training_size_batches_not_running_statistics",),
         why="a shuffled batch's maps written to the wrong sequences"),
    dict(name="official-relu-before-channel-mean", path=ACTIONLET,
         old="    cam = torch.relu((signed * dense).mean(dim=2))  # ReLU after the channel mean\n",
         new="    cam = torch.relu(signed * dense).mean(dim=2)  # ReLU after the channel mean\n",
         tests=(PARTS + "test_official_map_by_hand",),
         why="the official map's ReLU taken per channel before the channel mean (negative evidence kept out)"),
    dict(name="official-unsigned-gradient", path=ACTIONLET,
         old="    signed = gradient.mean(dim=(3, 4), keepdim=True)  # signed channel weights, no [·]₊\n",
         new="    signed = torch.relu(gradient).mean(dim=(3, 4), keepdim=True)  # signed channel weights, no [·]₊\n",
         tests=(PARTS + "test_official_map_by_hand",),
         why="the official map with eq. 37's [·]₊ on the gradient: no longer the authors' map"),
    dict(name="official-gradient-of-the-sum", path=ACTIONLET,
         old='            value = value.mean() if self.map == "official" else value.sum()\n',
         new="            value = value.sum()\n",
         tests=(PARTS + "test_official_map_by_hand",),
         why="the authors' gradient is of the batch mean (1 − mean sim): its 1/N scale is what their 1e-8 "
             "clip sees"),
    dict(name="eq37-positive-part-removed", path=ACTIONLET,
         old="    alpha = torch.relu(gradient).mean(dim=(3, 4), keepdim=True)  # eq. 37: [·]₊ on the gradient, "
             "then the mean\n",
         new="    alpha = gradient.mean(dim=(3, 4), keepdim=True)  # eq. 37: [·]₊ on the gradient, then the mean\n",
         tests=(PARTS + "test_eq37_map_by_hand",),
         why="eq. 37's [·]₊ dropped: channels with a negative gradient subtract from the map"),
    dict(name="eq37-gradient-ignored", path=ACTIONLET,
         old="    alpha = torch.relu(gradient).mean(dim=(3, 4), keepdim=True)  # eq. 37: [·]₊ on the gradient, "
             "then the mean\n",
         new="    alpha = torch.ones_like(gradient).mean(dim=(3, 4), keepdim=True)\n",
         tests=(PARTS + "test_actionlet_falls_on_the_moving_arm",),
         why="a map of feature magnitude alone (any positive map passed the old moving-arm test; now a large "
             "still channel on the right leg draws it there)"),
    dict(name="prototypes-never-refreshed", path=PLUS,
         old="        due = not self.prototypes.is_set or (epoch - start) % int(self.cfg.method.prototype_every) "
             "== 0\n",
         new="        due = not self.prototypes.is_set\n",
         tests=(METHOD + "test_prototypes_are_refreshed_every_epoch_after_the_warmup",),
         why="prototypes computed once after the warm-up: sim(z, p) falls behind and eq. 36's hinge goes to "
             "zero for most sequences (empty actionlets)"),
    dict(name="prototypes-due-reads-the-trainer-epoch", path=PLUS,
         old="        if self.warmup is not None and self.warmup.active(epoch):  # `epoch`, not the trainer's "
             "current one\n",
         new="        if self.in_warmup():\n",
         tests=(METHOD + "test_prototypes_are_refreshed_every_epoch_after_the_warmup",),
         why="bug fixed: prototypes_due(epoch) answered for the trainer's current epoch, not its argument"),
    dict(name="hinge-active-at-zero", path="skelssl/methods/actclr/prototypes.py",
         old="        self.active = (value > 0).detach()\n", new="        self.active = (value >= 0).detach()\n",
         tests=(METHOD + "test_training_logs_the_hinge_active_share",),
         why="a hinge at exactly zero (no gradient) counted as active"),
    dict(name="hinge-active-log-inverted", path="skelssl/methods/actclr/prototypes.py",
         old="        return self.active.float().mean()\n", new="        return 1 - self.active.float().mean()\n",
         tests=(METHOD + "test_triplet_hinge_active_share_by_hand",
                METHOD + "test_training_logs_the_hinge_active_share"),
         why="train/hinge_active logged the inactive share"),
    dict(name="anchor-rows-ignored", path="skelssl/methods/actclr/actclr.py",
         old='        for _, x, valid in self.training_batches("the average motion (eq. 2)", data, rows=rows):\n',
         new='        for _, x, valid in self.training_batches("the average motion (eq. 2)", data):\n',
         tests=(METHOD + "test_update_anchor_is_the_mean_of_the_given_rows",),
         why="update_anchor(data, rows) averaged the whole array, test rows included"),
    dict(name="safp-code-mixes-before-the-projector", path="skelssl/methods/actclr/safp.py",
         old="    return global_mix * projector(pool(dense)) + (1.0 - global_mix) * projector(safp_pool(dense, actionlet, "
             "\"code\"))\n",
         new="    return projector(global_mix * pool(dense) + (1.0 - global_mix) * safp_pool(dense, actionlet, \"code\"))\n",
         tests=(PARTS + "test_safp_code_key_mixes_the_projections_after_the_projector",),
         why="bug fixed: safp=code mixed the pooled features before the projector; the authors mix g(GAP) and "
             "g(masked mean) after it (4.4e-3 apart on the same features)"),
    dict(name="safp-code-epsilon-dropped", path="skelssl/methods/actclr/safp.py",
         old="        return a / (total + CODE_EPSILON)\n", new="        return a / total.clamp_min(1e-12)\n",
         tests=(PARTS + "test_safp_weights_and_pool",),
         why="the authors' masked mean divides by ΣA + 1e-5 (an empty actionlet pools to zero)"),
    dict(name="anchor-batch-own-ignored", path="skelssl/methods/actclr/actclr.py",
         old='                if self.cfg.method.anchor_batch == "own":\n',
         new='                if False:\n',
         tests=(REGISTRATION + "test_anchor_batch_decides_which_batch_normalises_the_anchor",),
         why="bug fixed: the anchor always shared the sequences' BatchNorm batch; the authors encode it alone"),
    dict(name="eq37-gradient-ignored-triplet", path=ACTIONLET,
         old="    alpha = torch.relu(gradient).mean(dim=(3, 4), keepdim=True)  # eq. 37: [·]₊ on the gradient, "
             "then the mean\n",
         new="    alpha = torch.ones_like(gradient).mean(dim=(3, 4), keepdim=True)\n",
         tests=("tests/methods/test_actclr_plus_parts.py::test_triplet_actionlet_lands_on_the_one_moving_leg",),
         why="ActCLR+'s triplet actionlet from feature magnitude alone (the old moving-leg test's features were "
             "zero away from the motion, so any positive map passed; now a large still channel on the left arm "
             "draws it there)"),
    dict(name="adain-max-ratio-not-passed", path="skelssl/methods/actclr/actclr.py",
         old="                          adain_max_ratio=None if m.adain_max_ratio is None else float(m.adain_max_ratio),\n",
         new="",
         tests=(REGISTRATION + "test_adain_max_ratio_reaches_skeleton_adain",),
         why="method.adain_max_ratio ignored: MATS always clipped AdaIN's gain at 2"),
]
