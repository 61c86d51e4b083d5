"""What every contrastive method shares, written once: the MoCo base with its extension points, memory banks,
the momentum update, the losses, plug-ins and the collapse monitor."""

from skelssl.methods.core.banks import MemoryQueue, gather_across_ranks
from skelssl.methods.core.base import MoCoMethod
from skelssl.methods.core.kmeans import KMeansResult, kmeans
from skelssl.methods.core.losses import (REMOVED_LOGIT, distribution_cross_entropy, info_nce_logits, info_nce_loss,
                                         remove_entries, similarity_to_bank)
from skelssl.methods.core.momentum import update_momentum
from skelssl.methods.core.monitor import CollapseMonitor, embedding_spread
from skelssl.methods.core.plugins import PLUGINS, Plugin, register_plugin

__all__ = [
    "MoCoMethod", "MemoryQueue", "kmeans", "KMeansResult", "gather_across_ranks", "update_momentum",
    "REMOVED_LOGIT", "remove_entries", "similarity_to_bank", "info_nce_logits", "info_nce_loss",
    "distribution_cross_entropy", "CollapseMonitor", "embedding_spread", "PLUGINS", "Plugin", "register_plugin",
]
