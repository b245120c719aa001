"""Linear layers with their weights prepacked for oneDNN, on CPUs.

A decode step is a matrix-vector product per weight: it reads every weight once for a handful of rows.
PyTorch's nn.Linear hands that to MKL's sgemm with the weight transposed, which on this machine reaches
about 12 GB/s at 1 to 32 rows; oneDNN, given the weight reordered once into its blocked layout, streams
it at 22-25 GB/s (float32 and bfloat16 alike), so a SmolLM2 step's matrix work falls from ~45 ms to
~23 ms at 1 row and from ~65 ms to ~22 ms at 8 (bench/RESULTS.md, engine). This is the reorder that
inductor's `freezing` and IPEX do; done once at load, it needs no compiler.

Results equal nn.Linear's to float32 rounding (a different summation order), not bit for bit.
"""

from __future__ import annotations

import torch


class PackedLinear(torch.nn.Module):
    """`nn.Linear`'s forward over a oneDNN-packed copy of its weight (any leading shape of input)."""

    def __init__(self, linear: torch.nn.Linear) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        # A plain attribute, not a parameter or buffer: an opaque oneDNN tensor has no storage to save,
        # move or share, and the model is never trained or moved once packed.
        self.packed = torch.ops.mkldnn._reorder_linear_weight(linear.weight.detach(), None)
        self.bias = None if linear.bias is None else linear.bias.detach()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, "none", [None], "")

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, packed=oneDNN"


def can_pack(model: torch.nn.Module) -> bool:
    parameter = next(model.parameters())
    return (
        parameter.device.type == "cpu"
        and parameter.dtype in (torch.float32, torch.bfloat16)
        and torch.backends.mkldnn.is_available()
    )


def pack_linear_layers(model: torch.nn.Module) -> int:
    """Replaces every nn.Linear of a CPU model by a PackedLinear; returns how many were replaced.

    A tied output layer (SmolLM2's lm_head shares the embedding's weight) gets its own packed copy, while
    the embedding keeps the original: one more vocabulary-by-hidden matrix in memory.
    """
    if not can_pack(model):
        return 0
    targets = [
        (parent, name, child)
        for parent in model.modules()
        for name, child in parent.named_children()
        if type(child) is torch.nn.Linear
    ]
    for parent, name, child in targets:
        setattr(parent, name, PackedLinear(child))
    return len(targets)
