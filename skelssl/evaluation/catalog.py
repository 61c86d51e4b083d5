"""Every evaluation protocol, by name: the one list the CLI, the runner and the docs read."""

from __future__ import annotations

from skelssl.evaluation.finetune import FinetuneProtocol, SupervisedProtocol
from skelssl.evaluation.protocols import KnnProtocol, LinearProtocol, LogisticProtocol, Protocol
from skelssl.evaluation.segmentation import SegmentationProtocol
from skelssl.evaluation.semi import SemiProtocol
from skelssl.evaluation.transfer import TransferFinetuneProtocol, TransferLinearProtocol
from skelssl.registry import Registry

__all__ = ["PROTOCOLS", "get_protocol", "register_protocol"]

PROTOCOLS = Registry("protocol")
for _protocol in (KnnProtocol(), LinearProtocol(), LogisticProtocol(), SemiProtocol(), FinetuneProtocol(),
                  SupervisedProtocol(), TransferLinearProtocol(), TransferFinetuneProtocol(), SegmentationProtocol()):
    PROTOCOLS.register(_protocol)
register_protocol = PROTOCOLS.register  # a protocol of your own, registered before the CLI or runner looks it up


def get_protocol(name: str) -> Protocol:
    return PROTOCOLS.lookup(name)
