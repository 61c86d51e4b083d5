"""ActCLR (Lin, Zhang & Liu, CVPR 2023): actionlets (actionlet.py), MATS (mats.py), SAFP (safp.py), similarity
mining; and ActCLR+ (TPAMI 2025, actclr_plus.py): prototype anchors (prototypes.py), MATS with adversarial noise
and skeleton mask, Inter-SD (inter_sd.py), SAM³ (sam.py)."""

from skelssl.methods.actclr.actclr import ActCLR, similarity_mining_loss
from skelssl.methods.actclr.actclr_plus import ActCLRPlus

__all__ = ["ActCLR", "ActCLRPlus", "similarity_mining_loss"]
