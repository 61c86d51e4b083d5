"""ActCLR (Lin, Zhang & Liu, CVPR 2023): actionlets (actionlet.py), MATS (mats.py), SAFP (safp.py), similarity
mining; the actionlet family that ActCLR+ extends."""

from skelssl.methods.actclr.actclr import ActCLR, similarity_mining_loss

__all__ = ["ActCLR", "similarity_mining_loss"]
