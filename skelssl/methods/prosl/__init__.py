"""ProSL (Qin et al., 2025) as a plug-in on any MoCo-style method (`plugins.prosl.enabled=true`): the Semantic
Codebook (codebook.py), the semantic loss, codebook negatives and adaptive semantic branch (semantic.py), and the
plug-in that schedules them (plugin.py)."""

from skelssl.methods.prosl.codebook import SemanticCodebook
from skelssl.methods.prosl.plugin import ProSL

__all__ = ["ProSL", "SemanticCodebook"]
