"""A²MC (issue 23): the attack step, the raw frames it reaches, the views' sources, M0's ascent, the joined query
call and the cuDNN decision. Each entry: a breakage the named tests must catch."""

_PARTS = "tests/methods/test_a2mc_parts.py::"
_A2MC = "skelssl/methods/a2mc/a2mc.py"
_ATTACK = "skelssl/methods/a2mc/attack.py"

ENTRIES = [
    dict(name="a2mc-weak-view-from-x", path=_A2MC,
         old="x1 = self.to_stream(self.basic_view(x_hat, lengths))",
         new="x1 = self.to_stream(self.basic_view(x, lengths))",
         tests=(_PARTS + "test_each_view_is_cut_from_its_own_sequence_and_reaches_its_own_loss_term",),
         why="the weak attack-augmentation would carry no attack: f1 a second basic view of x"),
    dict(name="a2mc-strong-view-without-extras", path=_A2MC,
         old="        return apply_named(self.basic_view(x, lengths), self.generator, STRONG_EXTRA, self.layout, "
             "self.augment_cfg)\n",
         new="        return self.basic_view(x, lengths)\n",
         tests=(_PARTS + "test_the_strong_view_is_the_basic_view_then_the_extra_augmentations",),
         why="the strong view would lack flip, rotation, noise, blur and axis mask (§III-B)"),
    dict(name="a2mc-strong-view-basic-in-loss", path=_A2MC,
         old="x2 = self.to_stream(self.strong_view(x_hat, lengths))",
         new="x2 = self.to_stream(self.basic_view(x_hat, lengths))",
         tests=(_PARTS + "test_each_view_is_cut_from_its_own_sequence_and_reaches_its_own_loss_term",),
         why="L2 would see a weak view of x̂, not the strong one"),
    dict(name="a2mc-key-view-from-x-hat", path=_A2MC,
         old="x0 = self.to_stream(self.basic_view(x, lengths))          # key view",
         new="x0 = self.to_stream(self.basic_view(x_hat, lengths))          # key view",
         tests=(_PARTS + "test_each_view_is_cut_from_its_own_sequence_and_reaches_its_own_loss_term",),
         why="the anchor f0 (and M0's keys) would come from the attacked sequence"),
    dict(name="a2mc-m0-never-ascends", path=_A2MC,
         old="            self.queue.ascend(self._pending_bank_grad, float(self.cfg.method.bank_lr))\n",
         new="            pass\n",
         tests=(_PARTS + "test_m0_ascends_its_gradient_after_the_optimizer_step",),
         why="M0 would stay the first keys forever: no adversarial negatives (eq. 7)"),
    dict(name="a2mc-attack-bound-per-sequence", path=_ATTACK,
         old="    rho = project_l2_per_joint(rho, eta) if bound_unit == \"joint\" else project_l2(rho, eta)",
         new="    rho = project_l2(rho, eta)",
         tests=(_PARTS + "test_the_attack_step_on_a_linear_objective_by_hand",),
         why="the per-sequence ball always binds: ε would have no effect (issue 23)"),
    dict(name="a2mc-attack-default-sequence-ball", path=_A2MC,
         old="\"attack_bound_unit\": choice(\"joint\", *BOUND_UNITS)",
         new="\"attack_bound_unit\": choice(\"sequence\", *BOUND_UNITS)",
         tests=(_PARTS + "test_the_attack_moves_the_class_feature_toward_uniform_within_the_bound",),
         why="the method would again use the always-binding ball by default"),
    dict(name="a2mc-attack-adam-eps-regime", path=_ATTACK,
         old="    step = -adam_first_step(scale_free(grad), eps)",
         new="    step = -adam_first_step(grad, eps)",
         tests=(_PARTS + "test_the_attack_step_on_a_linear_objective_by_hand",),
         why="coordinates whose gradient is below Adam's eps (most of them at init) would hardly move"),
    dict(name="a2mc-attack-through-the-resampling", path=_ATTACK,
         old="        view = whole_sequence(x.detach(), lengths, grid_frames).requires_grad_(True)\n"
             "        loss = loss_of_view(view)  # eq. 5\n"
             "        (grad,) = torch.autograd.grad(loss, view)\n",
         new="        raw = x.detach().requires_grad_(True)\n"
             "        loss = loss_of_view(whole_sequence(raw, lengths, grid_frames))  # eq. 5\n"
             "        (grad,) = torch.autograd.grad(loss, raw)\n"
             "        to_raw_frames = lambda step, lengths, frames: step  # noqa: E731\n",
         tests=(_PARTS + "test_every_valid_raw_frame_of_a_long_sequence_is_perturbed",),
         why="the earlier attack: raw frames no output frame reads (most, past 128 valid frames) get zero ρ"),
    dict(name="a2mc-joined-views-share-batch-norm", path="skelssl/methods/a2mc/batching.py",
         old="            return torch.cat([own(bn, part) for part in x.chunk(views)])\n",
         new="            return own(bn, x)\n",
         tests=(_PARTS + "test_the_three_query_views_in_one_call_equal_three_calls",),
         why="the joined call would normalise the three views with their common statistics"),
    dict(name="a2mc-stgcn-joins-views", path="skelssl/methods/a2mc/batching.py",
         old="    return isinstance(encoder, RecurrentEncoder)\n",
         new="    return True\n",
         tests=(_PARTS + "test_the_three_query_views_in_one_call_equal_three_calls",),
         why="ST-GCN's block BatchNorms (fused kernels) would mix the views' statistics"),
    dict(name="a2mc-cudnn-always-off", path=_ATTACK,
         old="    if device.type == \"cuda\" and any(isinstance(sub, nn.RNNBase) and not sub.training\n"
             "                                     for root in modules for sub in root.modules()):\n",
         new="    if device.type == \"cuda\":\n",
         tests=(_PARTS + "test_cudnn_is_switched_off_only_for_a_recurrent_layer_in_eval_mode",),
         why="the attack pass would give up cuDNN on CUDA even where it can differentiate the RNN"),
]
