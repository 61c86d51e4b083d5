"""HiCo (Dong et al., AAAI 2023): hierarchical contrast on its two-branch multi-granularity encoder
(skelssl/models/hico.py), the base method of ProSL's main tables."""

from skelssl.methods.hico.hico import HiCo, multi_positive_info_nce

__all__ = ["HiCo", "multi_positive_info_nce"]
