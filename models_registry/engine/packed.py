"""Linear layers with their weights prepacked for oneDNN, on CPUs.

A decode step is a matrix-vector product per weight: it reads every weight once for a handful of rows.
PyTorch's nn.Linear hands that to MKL's sgemm with the weight transposed, which on this machine reaches
about 12 GB/s at 1 to 32 rows; oneDNN, given the weight reordered once into its blocked layout, streams
it at 22-25 GB/s (float32 and bfloat16 alike), so a SmolLM2 step's matrix work falls from ~45 ms to
~23 ms at 1 row and from ~65 ms to ~22 ms at 8 (bench/RESULTS.md, engine). This is the reorder that
inductor's `freezing` and IPEX do; done once at load, it needs no compiler.

Results equal nn.Linear's to float32 rounding (a different summation order), not bit for bit.

A layer can also be packed in bfloat16 beside float32 weights: that is what an embedding model under CPU
autocast runs (autocast casts every weight to bf16 again on each forward, which for one short query cost
more than the matrix work: all-MiniLM-L6-v2, one 16-token query, 8.0 -> 5.2 ms a forward; 16 inputs of
200 tokens 323-336 -> 288-300 ms; the same vectors).
"""

from __future__ import annotations

import torch


class PackedLinear(torch.nn.Module):
    """`nn.Linear`'s forward over a oneDNN-packed copy of its weight (any leading shape of input), in the
    weight's dtype or `dtype`; an input of another dtype is cast to it, and the output is in it.

    With `keep_plain`, the layer also keeps the plain weight it was made from (no copy: the tensor
    itself, which packing would otherwise free; a tied output layer's is the embedding's) for `row`."""

    def __init__(
        self, linear: torch.nn.Linear, dtype: torch.dtype | None = None, keep_plain: bool = False
    ) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.dtype = dtype or linear.weight.dtype
        self.plain: torch.nn.Parameter | None = None
        if keep_plain and linear.weight.dtype == self.dtype:
            self.plain = torch.nn.Parameter(linear.weight.detach(), requires_grad=False)
        # A parameter (never trained), so that torch.export names it as module state and compiled.py can
        # hand this very tensor to the compiled step (a buffer would be copied while compiling). The model
        # is never saved or moved once packed: an opaque oneDNN tensor has no storage to save.
        weight = linear.weight.detach().to(self.dtype)
        self.packed = torch.nn.Parameter(
            torch.ops.mkldnn._reorder_linear_weight(weight, None), requires_grad=False
        )
        bias = None if linear.bias is None else linear.bias.detach().to(self.dtype)
        self.bias: torch.Tensor | None
        self.register_buffer("bias", bias, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(self._input(x), self.packed, self.bias, "none", [None], "")

    def forward_add(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        """forward(x) + residual in one oneDNN call (its `add` post-op)."""
        return torch.ops.mkldnn._linear_pointwise.binary(
            self._input(x), residual, self.packed, self.bias, "add"
        )

    def forward_silu(self, x: torch.Tensor) -> torch.Tensor:
        """silu(forward(x)) in one oneDNN call (its `swish` post-op)."""
        return torch.ops.mkldnn._linear_pointwise(self._input(x), self.packed, self.bias, "swish", [], "")

    def forward_mul(self, x: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
        """forward(x) * other in one oneDNN call (its `mul` post-op)."""
        return torch.ops.mkldnn._linear_pointwise.binary(self._input(x), other, self.packed, self.bias, "mul")

    def row(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        """forward(x) (+ residual) of a single row, as a sum of products over the plain weight: for
        compiled code only, which makes it one pass over the weight at memory speed (eager, it would
        hold weight x input in memory). oneDNN's packed kernels read a weight for one row at about half
        the memory bandwidth (2 Zen 4 vCPUs: 13-17 GB/s against 23-25 GB/s this way), and one row is
        what a request decoding alone runs. Accumulates in float32 whatever the weight's dtype, as
        oneDNN does."""
        assert self.plain is not None, "packed without keep_plain"
        product = self.plain.float() * self._input(x).float().reshape(-1, 1, self.in_features)
        out = product.sum(-1).view(*x.shape[:-1], self.out_features)
        if self.bias is not None:
            out = out + self.bias.float()
        return (out if residual is None else out + residual.float()).to(self.dtype)

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        return x if x.dtype == self.dtype else x.to(self.dtype)

    def extra_repr(self) -> str:
        dtype = str(self.dtype).removeprefix("torch.")
        return f"in_features={self.in_features}, out_features={self.out_features}, packed=oneDNN {dtype}"


def is_packed(model: torch.nn.Module) -> bool:
    """Whether `pack_linear_layers` packed the model (it packs every linear layer or none)."""
    return any(isinstance(module, PackedLinear) for module in model.modules())


def can_pack(model: torch.nn.Module) -> bool:
    parameter = next(model.parameters())
    return (
        parameter.device.type == "cpu"
        and parameter.dtype in (torch.float32, torch.bfloat16)
        and torch.backends.mkldnn.is_available()
    )


def pack_linear_layers(
    model: torch.nn.Module, dtype: torch.dtype | None = None, keep_plain: bool = False
) -> int:
    """Replaces every nn.Linear of a CPU model by a PackedLinear (in `dtype`, else its weights' own;
    keeping the plain weights too with `keep_plain`); returns how many were replaced.

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
        setattr(parent, name, PackedLinear(child, dtype, keep_plain))
    return len(targets)
