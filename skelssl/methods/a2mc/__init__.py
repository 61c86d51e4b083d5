"""A²MC (Xu et al.): Att-Aug targeted attack (attack.py), PNM's gradient-updated and mixed banks (pnm.py), the MC
loss (mc_loss.py), on the shared MoCo core (a2mc.py)."""

from skelssl.methods.a2mc.a2mc import A2MC

__all__ = ["A2MC"]
