"""Attention for CPU decoding: PyTorch's SDPA with grouped-query attention done natively.

transformers only passes `enable_gqa` to SDPA when there is no attention mask; with one (and a batch of
left-padded sequences always has one) it first repeats every key/value head to match the query heads,
copying the whole KV cache each layer each step (3x for SmolLM2's 9 query / 3 KV heads). Without the
copy a CPU decode step is faster (bench/RESULTS.md, engine), with the same logits as transformers' path
(to 1e-5, tested). On CUDA, SDPA with a mask and enable_gqa falls back to the math kernel, so GPUs
keep transformers' own path.

One case SDPA's CPU kernel serves badly: a bf16 decode step (one query per row). Its flash kernel takes
2.1 ms per layer at 32 rows over ~120 cached positions, 57% of the step; two batched float32 matmuls
over the upcast window take a fifth of that (decode_attention). Measured in the engine, in-process A/B,
a bf16 step: 1 row 27.4 -> 27.1 ms, 8 rows 43.2 -> 32.2, 32 rows 106.6 -> 62.9. In float32, SDPA and
decode_attention measured the same, so float32 keeps SDPA.

Compiled decode steps of several rows (compiled.py) take neither: both run one small matrix product per
row and KV head through MKL, at 2.5x the time it takes to read the cached window (2 Zen 5 vCPUs, float32,
32 rows over 151 positions, 30 layers: 17.3 ms against 7 ms to read them). They compute attention as sums
of products (summed_decode_attention), which inductor makes a few loops per layer over each row's window.
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
    if query.dtype == torch.bfloat16 and query.shape[2] == 1:
        return decode_attention(query, key, value, attention_mask, scaling), None
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


def decode_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None,
) -> torch.Tensor:
    """Attention of one new token per row over its cached keys, grouped-query heads without copying the
    cache; returns (rows, 1, heads, dim) like gqa_sdpa_attention."""
    rows, heads, _, dim = query.shape
    kv_heads = key.shape[1]
    # In float32: CPU batched matmuls of these small shapes are faster in float32 than in bf16, and the
    # upcast copies only this layer's cached window.
    # Query head h reads KV head h // group (transformers' repeat_kv order).
    grouped = query.float().reshape(rows, kv_heads, heads // kv_heads, dim)
    scores = torch.matmul(grouped, key.float().transpose(-1, -2)) * (scaling or dim**-0.5)
    if attention_mask is not None:  # boolean, True where a row may attend (sdpa_mask)
        scores = scores.masked_fill(~attention_mask.view(rows, 1, 1, -1), float("-inf"))
    output = torch.matmul(scores.softmax(-1), value.float())
    return output.reshape(rows, 1, heads, dim).to(query.dtype)


def summed_decode_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor,
    scaling: float,
) -> torch.Tensor:
    """decode_attention (one new token per row, a boolean mask) as sums of products, for compiled code
    only: inductor makes it loops that read each row's cached keys and values in place, in float32
    whatever their dtype; eager, it would hold every product in memory. The compiled step, 2 Zen 5 vCPUs,
    float32, alternated with SDPA's: 8 rows 0.93-0.96x the time, 32 rows 0.88-0.91x (bench/RESULTS.md,
    engine, seventh round).

    The query must be in memory already: inductor inlines a query computed in the same graph into the
    loop over the window, recomputing it at every cached position (fused.py's step makes it a buffer)."""
    rows, heads, _, dim = query.shape
    kv_heads = key.shape[1]
    # Query head h reads KV head h // group (transformers' repeat_kv order).
    grouped = query.float().reshape(rows, kv_heads, heads // kv_heads, 1, dim)
    scores = (grouped * key.float().unsqueeze(2)).sum(-1) * scaling  # (rows, kv heads, group, window)
    scores = scores.masked_fill(~attention_mask.view(rows, 1, 1, -1), float("-inf"))
    output = (scores.softmax(-1).unsqueeze(-1) * value.float().unsqueeze(2)).sum(-2)
    return output.reshape(rows, 1, heads, dim).to(query.dtype)
