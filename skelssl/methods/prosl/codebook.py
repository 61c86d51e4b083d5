"""ProSL's Semantic Codebook (SCoBo, §3.3): k semantic centroids from k-means of the key features ẑ of the
training set, every training sample's cluster, and the joints' semantic coefficients. A module, so it is saved
in checkpoints and a resumed run continues with the same codebook."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from skelssl.methods.core.kmeans import kmeans
from skelssl.methods.prosl.semantic import masking_probabilities

__all__ = ["SemanticCodebook"]


class SemanticCodebook(nn.Module):
    """centers (k, D) unit length; assignments (N_train,) long, −1 where unknown; coefficients (V,) p_v of
    eq. 7 averaged over a sample of sequences; ready once built."""

    def __init__(self, k: int, dim: int, samples: int, joints: int) -> None:
        super().__init__()
        self.register_buffer("centers", torch.zeros(k, dim))
        self.register_buffer("assignments", torch.full((samples,), -1, dtype=torch.long))
        self.register_buffer("coefficients", torch.ones(joints))
        self.register_buffer("ready", torch.zeros((), dtype=torch.bool))

    @property
    def k(self) -> int:
        return self.centers.shape[0]

    def build(self, features: Tensor, rows: Tensor, *, iterations: int, generator: torch.Generator) -> int:
        """Spherical k-means of `features` (n, D), the key features of training samples `rows` (n,); samples not
        in `rows` get no assignment. Returns the Lloyd iterations run."""
        if features.shape[0] < self.k:
            raise ValueError(f"ProSL: {features.shape[0]} training features for a codebook of k={self.k} "
                             "centroids; lower plugins.prosl.codebook_size")
        result = kmeans(features, self.k, iterations=iterations, spherical=True, generator=generator,
                        progress=True, desc="ProSL codebook: k-means")
        self.centers.copy_(result.centers.to(self.centers))
        assignments = torch.full_like(self.assignments, -1)
        assignments[rows.to(assignments.device)] = result.assignments.to(assignments.device)
        self.assignments.copy_(assignments)
        self.ready.fill_(True)
        return result.iterations

    def assigned(self, index: Tensor) -> Tensor:
        """SCoBo{z_b}: the stored cluster of training samples `index` (−1 where unknown)."""
        return self.assignments[index.to(self.assignments.device)]

    def masking_probabilities(self, mask_ratio: float) -> Tensor:
        """eq. 8 from the stored coefficients; uniform `mask_ratio` before the codebook exists."""
        if not bool(self.ready):
            return torch.full_like(self.coefficients, mask_ratio)
        return masking_probabilities(self.coefficients, mask_ratio)
