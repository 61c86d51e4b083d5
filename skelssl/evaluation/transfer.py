"""Transfer: pretrain on dataset A, evaluate on dataset B, by linear probe (ActCLR/ActCLR+ Table V: NTU 60 ->
PKU-MMD) or by finetuning (A²MC Table IV: NTU -> PKU-MMD II).

`skelssl evaluate transfer-linear --checkpoint A/checkpoints/last.ckpt data.root=B data.split=SPLIT`. B's
sequences are brought to the encoder's input (evaluation.inputs.model_input): when B's layout differs from
A's, through the joint map between them (skelssl.skeleton.joint_maps: NTU-25 <-> Kinect-20), or a clear
error when none is known; B gets zero persons up to A's person count. The records' dataset reads "A->B";
the linear probe and the finetune schedule are those of the `linear` and `finetune` protocols (eval.*).
"""

from __future__ import annotations

from pathlib import Path

from skelssl.data.prepared import load_meta
from skelssl.errors import UserError
from skelssl.evaluation.backbone import Backbone
from skelssl.evaluation.finetune import finetune_in_context
from skelssl.evaluation.protocols import EvalContext, LinearProtocol, Protocol
from skelssl.evaluation.results import ResultRecord

__all__ = ["source_dataset_name", "transfer_label", "TransferLinearProtocol", "TransferFinetuneProtocol"]


def source_dataset_name(backbone: Backbone) -> str:
    """The name of the dataset the encoder learnt on (its meta.json; else its folder's name, or the name an
    imported run records)."""
    root = backbone.pretrained_on.get("root")
    if not root:
        return str(backbone.pretrained_on.get("dataset") or "unknown")
    try:
        return load_meta(root).dataset
    except Exception:  # noqa: BLE001 - the folder may be gone; its name is the best label left
        return Path(root).name


def transfer_label(context: EvalContext) -> str:
    """'A->B'; a UserError when B is the pretraining dataset itself."""
    source_root = context.backbone.pretrained_on.get("root")
    target_root = context.cfg.data.root
    if source_root and Path(source_root).resolve() == Path(target_root).resolve():
        raise UserError(f"transfer evaluates on another dataset than the pretraining one ({source_root}); give the "
                        "target: data.root=DIR data.split=SPLIT (e.g. data.root=data/msr data.split=xsub)")
    target = context.dataset_name or str(context.cfg.data.dataset)
    return f"{source_dataset_name(context.backbone)}->{target}"


class TransferLinearProtocol(Protocol):
    name = "transfer-linear"
    help = "linear probe on another dataset (data.root=B data.split=S), through a joint map if the layouts differ"

    def run(self, context: EvalContext) -> list[ResultRecord]:
        label = transfer_label(context)
        first_new = len(context.scores)
        records = LinearProtocol().run(context)
        for item in records + context.scores[first_new:]:
            item.dataset, item.protocol = label, self.name
        return records


class TransferFinetuneProtocol(Protocol):
    name = "transfer-finetune"
    help = "encoder + classifier finetuned on another dataset (data.root=B data.split=S; eval.finetune.*)"

    def run(self, context: EvalContext) -> list[ResultRecord]:
        label = transfer_label(context)
        return finetune_in_context(context, self.name, context.backbone.copy_encoder(), dataset=label)
