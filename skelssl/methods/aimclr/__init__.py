"""AimCLR (Guo et al., AAAI 2022): extreme augmentations, EADM (eadm.py), D³M and NNM (nnm.py) losses."""

from skelssl.methods.aimclr.aimclr import AimCLR, d3m_loss

__all__ = ["AimCLR", "d3m_loss"]
