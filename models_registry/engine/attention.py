"""Attention for CPU decoding: PyTorch's SDPA with grouped-query attention done natively.

transformers only passes `enable_gqa` to SDPA when there is no attention mask; with one (and a batch of
left-padded sequences always has one) it first repeats every key/value head to match the query heads,
copying the whole KV cache each layer each step (3x for SmolLM2's 9 query / 3 KV heads). Without the
copy a CPU decode step is faster (bench/RESULTS.md, engine), with the same logits as transformers' path
(to 1e-5, tested). On CUDA, SDPA with a mask and enable_gqa falls back to the math kernel, so GPUs
keep transformers' own path.
"""

from __future__ import annotations

import torch
from transformers import AttentionInterface, PreTrainedModel
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

IMPLEMENTATION = "llmp_gqa_sdpa"


def gqa_sdpa_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **_: object,
) -> tuple[torch.Tensor, None]:
    causal = attention_mask is None and query.shape[2] > 1
    output = torch.nn.functional.scaled_dot_product_attention(
        query,
        key,
        value,
        attn_mask=attention_mask,
        dropout_p=0.0,
        scale=scaling,
        is_causal=causal,
        enable_gqa=True,
    )
    return output.transpose(1, 2).contiguous(), None


def use_native_gqa(model: PreTrainedModel) -> None:
    """Switches a CPU model with grouped-query attention to `gqa_sdpa_attention`."""
    config = model.config
    heads = getattr(config, "num_attention_heads", None)
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    if model.device.type != "cpu" or not heads or heads == kv_heads:
        return
    AttentionInterface.register(IMPLEMENTATION, gqa_sdpa_attention)
    AttentionMaskInterface.register(IMPLEMENTATION, sdpa_mask)  # the same boolean masks SDPA takes
    model.set_attn_implementation(IMPLEMENTATION)
