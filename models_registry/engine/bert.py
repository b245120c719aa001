"""The forward pass of a BERT encoder (all-MiniLM-L6-v2's architecture), written out over the model's own
modules with the Python around them left out.

transformers' BertModel runs a short query through some 60 modules a layer's worth of Python: module
calls, keyword plumbing, a signature inspected per call, mask helpers, and a pooler whose output an
embedding model never reads. For one search query that Python cost as much as the matrix work: on 2
vCPUs with the weights packed in bf16, one 21-token query 7.0-7.5 -> 5.2-5.9 ms a forward, one 4-token
query 4.4-5.6 -> 3.3-3.4 ms; a batch of 5 inputs of up to 122 tokens the same ~100 ms (bench/RESULTS.md,
knowledge base). The arithmetic is transformers' own, operator for operator and in its order (the
embeddings summed as it sums them, post-norm residuals, exact GELU, attention by SDPA with padded keys
masked), through the same weights, packed or not: in float32 the hidden states equal transformers'
(tested); under bf16 autocast each operator is cast as it would be there.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import BertModel, PreTrainedModel


def supports(model: PreTrainedModel) -> bool:
    """A BERT encoder (transformers' has absolute positions only) with exact GELU, neither causal nor
    cross-attending."""
    config = model.config
    return (
        isinstance(model, BertModel)
        and config.hidden_act == "gelu"
        and not config.is_decoder
        and not getattr(config, "add_cross_attention", False)
    )


class _Norm:
    def __init__(self, norm: torch.nn.LayerNorm) -> None:
        self.shape, self.eps = norm.normalized_shape, norm.eps
        self.weight, self.bias = norm.weight.detach(), norm.bias.detach()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, self.shape, self.weight, self.bias, self.eps)


class _Layer:
    def __init__(self, layer: torch.nn.Module) -> None:
        attention = layer.attention
        self.q, self.k, self.v = attention.self.query, attention.self.key, attention.self.value
        self.out, self.out_norm = attention.output.dense, _Norm(attention.output.LayerNorm)
        self.up, self.down = layer.intermediate.dense, layer.output.dense
        self.down_norm = _Norm(layer.output.LayerNorm)


class BertForward:
    """The last hidden state of a model `supports` accepts, for right-padded inputs."""

    def __init__(self, model: BertModel) -> None:
        config = model.config
        self.heads = config.num_attention_heads
        self.scaling = (config.hidden_size // self.heads) ** -0.5
        embeddings = model.embeddings
        self.words = embeddings.word_embeddings.weight.detach()
        self.positions = embeddings.position_embeddings.weight.detach()
        self.token_type = embeddings.token_type_embeddings.weight.detach()[0]  # every token is of type 0
        self.embed_norm = _Norm(embeddings.LayerNorm)
        self.layers = [_Layer(layer) for layer in model.encoder.layer]

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        batch, length = input_ids.shape
        hidden = self.embed_norm(self.words[input_ids] + self.token_type + self.positions[:length])
        # Padded keys masked out (queries at padding compute rows that pooling ignores); none to mask in
        # a batch without padding, which lets SDPA take its unmasked kernel.
        mask = None if bool(attention_mask.all()) else attention_mask.bool()[:, None, None, :]
        for layer in self.layers:
            q, k, v = (
                projection(hidden).view(batch, length, self.heads, -1).transpose(1, 2)
                for projection in (layer.q, layer.k, layer.v)
            )
            context = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=self.scaling)
            context = context.transpose(1, 2).reshape(batch, length, -1)
            hidden = layer.out_norm(layer.out(context) + hidden)
            hidden = layer.down_norm(layer.down(F.gelu(layer.up(hidden))) + hidden)
        return hidden
