"""Decode steps and prefills of a Llama-architecture model, written against its packed weights with fewer
operators.

With its weights packed (packed.py), a float32 SmolLM2-135M decode step spends ~25 ms streaming weights
and, through transformers' forward, ~12 ms more on some 900 small eager operators: per layer, two
RMSNorms of six operators each, rotary embeddings rebuilt from the position ids and applied through
`rotate_half` (slices, a negation, a concatenation), residual adds, mask handling, and the Python of the
modules around them. This step does the same arithmetic with fewer operators and less Python:

- the residual add rides on the output projections (oneDNN's `add` post-op: one call, not two);
- rotary embeddings come from a table made once (cos and sin of every position, as transformers
  computes them), gathered once a step for all layers; `rotate_half(x) * sin` is `x` rolled by half a
  head times sin with its first half negated, the same products;
- keys and values go straight into the engine's batch cache, and the step's mask is used as it is.

It calls the model's own packed weights (no copy: memory does not grow; q/k/v and gate/up concatenated
into one projection each saved another 1-1.6 ms a step but need a second copy of the layer weights, so
they stay separate). Measured in one process, alternating (bench/RESULTS.md, engine), a float32 step:
36.8 -> 33.1 ms at 1 row, 41.9 -> 38.6 at 8, 81.3 -> 76.7 at 32; bf16 at 1 row 28.0 -> 24.3. In float32
the logits equal transformers' (tested); in bfloat16 a residual add is rounded once instead of twice, so
they differ by bf16 rounding.

Prefill takes the same layers (`prefill`) over left-padded prompts, with two differences that matter
when a forward holds a thousand tokens and more: the projections, norms and MLP run over the prompts'
own tokens only (the padding is there for attention alone), and SiLU and the product with up_proj ride
on the gate and up projections as oneDNN post-ops (one pass over the widest activations, not three).

`step` is written over plain tensors and integers so that compiled.py can compile it as it is.
"""

from __future__ import annotations

import torch
from transformers import PreTrainedModel

from models_registry.engine.attention import gqa_sdpa_attention, summed_decode_attention
from models_registry.engine.kv_cache import BatchKVCache
from models_registry.engine.packed import PackedLinear, is_packed
from models_registry.engine.prefill import PaddedBatch
from models_registry.engine.prefix_cache import LayerStates

# Rope types whose frequencies do not depend on the sequence's length, so a table made once is right.
_STATIC_ROPE = {"default", "linear", "llama3", "yarn"}


def supports(model: PreTrainedModel) -> bool:
    """A CPU Llama model whose projections are all packed (the loader's default)."""
    config = model.config
    rope = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    layers = getattr(getattr(model, "model", None), "layers", None)
    return (
        config.model_type == "llama"
        and model.device.type == "cpu"
        and getattr(config, "hidden_act", None) == "silu"
        and rope.get("rope_type", "default") in _STATIC_ROPE
        and layers is not None
        and is_packed(model)
    )


class _Layer(torch.nn.Module):
    def __init__(self, layer: torch.nn.Module) -> None:
        super().__init__()
        attention, mlp = layer.self_attn, layer.mlp
        # The model's own packed projections, as submodules; the norms' weights as buffers (not saved).
        self.q, self.k, self.v = attention.q_proj, attention.k_proj, attention.v_proj
        self.out, self.down = attention.o_proj, mlp.down_proj
        self.gate, self.up = mlp.gate_proj, mlp.up_proj
        self.input_norm: torch.Tensor
        self.post_norm: torch.Tensor
        self.register_buffer("input_norm", layer.input_layernorm.weight.detach(), persistent=False)
        self.register_buffer("post_norm", layer.post_attention_layernorm.weight.detach(), persistent=False)


class FusedDecoder(torch.nn.Module):
    """Decode steps over the engine's batch cache, and prefills, of a model `supports` accepts.

    A module holding the model's own tensors (no copies) under its own names, so that compiled.py can
    export `step` and hand those same tensors to the compiled step."""

    def __init__(self, model: PreTrainedModel, max_positions: int) -> None:
        super().__init__()
        config = model.config
        self.heads = config.num_attention_heads
        self.kv_heads = config.num_key_value_heads or self.heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // self.heads
        self.eps = config.rms_norm_eps
        self.scaling = self.head_dim**-0.5
        decoder = model.model
        self.dtype = decoder.embed_tokens.weight.dtype
        self.stack: list[_Layer] = [_Layer(layer) for layer in decoder.layers[: config.num_hidden_layers]]
        self.layers = torch.nn.ModuleList(self.stack)  # registered, so that their tensors are named
        self.lm_head = model.lm_head
        self.positions = max_positions
        cos, sin = _rope_table(decoder.rotary_emb, max_positions, self.head_dim, self.dtype)
        self.embed: torch.Tensor
        self.final_norm: torch.Tensor
        self.cos: torch.Tensor
        self.sin: torch.Tensor
        for name, tensor in (
            ("embed", decoder.embed_tokens.weight.detach()),
            ("final_norm", decoder.norm.weight.detach()),
            ("cos", cos),
            ("sin", sin),
        ):
            self.register_buffer(name, tensor, persistent=False)

    @property
    def plain_weights(self) -> bool:
        """Whether every projection kept its plain weight beside the packed one (packed.py's
        keep_plain), as `step`'s plain_row needs."""
        linears = [self.lm_head, *(m for layer in self.stack for m in (layer.q, layer.k, layer.v))]
        linears += [m for layer in self.stack for m in (layer.out, layer.gate, layer.up, layer.down)]
        return all(getattr(module, "plain", None) is not None for module in linears)

    @torch.inference_mode()
    def decode(
        self,
        input_ids: torch.Tensor,
        position_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        cache: BatchKVCache,
    ) -> torch.Tensor:
        """Logits (rows, vocabulary) of one step. `input_ids` and `position_ids` are (rows, 1), the
        step's boolean mask (rows, window + 1) from `cache.prepare_step`; keys and values are written
        into `cache` (the caller then calls `finish_step`)."""
        keys, values = cache.buffers()
        return self.step(input_ids, position_ids, attention_mask, keys, values, cache.start, cache.end)

    def step(
        self,
        input_ids: torch.Tensor,
        position_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        keys: list[torch.Tensor],
        values: list[torch.Tensor],
        start: int,
        end: int,
        plain_row: bool = False,
        summed_attention: bool = False,
    ) -> torch.Tensor:
        """`decode` over the cache's buffers (per layer: rows, kv heads, columns, dim) and window
        [start, end): the new keys and values go into column `end`. Only tensor operations and the
        packed weights' oneDNN calls, so compiled.py can hand it to torch.compile as it is.

        `plain_row`: a single row's projections as sums of products over the plain weights
        (PackedLinear.row), for compiled.py's one-row step when the model kept them (`plain_weights`).
        `summed_attention`: attention as summed_decode_attention, for compiled.py's steps only."""

        def linear(
            module: PackedLinear, x: torch.Tensor, residual: torch.Tensor | None = None
        ) -> torch.Tensor:
            if plain_row:
                return module.row(x, residual)
            return module(x) if residual is None else module.forward_add(x, residual)

        rows = input_ids.shape[0]
        heads, kv_heads, dim = self.heads, self.kv_heads, self.head_dim
        hidden = torch.nn.functional.embedding(input_ids, self.embed)  # (rows, 1, hidden)
        positions = position_ids.view(-1)
        cos, sin = self.cos[positions].unsqueeze(1), self.sin[positions].unsqueeze(1)  # (rows, 1, dim)
        mask = attention_mask.view(rows, 1, 1, -1)
        for layer, layer_keys, layer_values in zip(self.stack, keys, values, strict=True):
            normed = self._norm(hidden, layer.input_norm)
            # Queries and keys rotated together: compiled, the rotated heads then have two users (the
            # cache write and attention), so inductor keeps them in memory rather than recomputing the
            # query at every cached position inside summed_decode_attention's loop (a step 20-30% slower).
            projected = torch.cat([linear(layer.q, normed), linear(layer.k, normed)], -1)
            rotated = _rotate(projected.view(rows, heads + kv_heads, dim), cos, sin)
            query, key = rotated[:, :heads], rotated[:, heads:]
            layer_keys[:rows, :, end : end + 1] = key.unsqueeze(2)
            layer_values[:rows, :, end : end + 1] = linear(layer.v, normed).view(rows, kv_heads, 1, dim)
            window = (
                query.unsqueeze(2),
                layer_keys[:rows, :, start : end + 1],
                layer_values[:rows, :, start : end + 1],
            )
            if summed_attention:
                attended = summed_decode_attention(*window, mask, self.scaling)
            else:
                attended, _ = gqa_sdpa_attention(None, *window, mask, scaling=self.scaling)
            hidden = linear(layer.out, attended.reshape(rows, 1, heads * dim), hidden)
            normed = self._norm(hidden, layer.post_norm)
            act = torch.nn.functional.silu(linear(layer.gate, normed)) * linear(layer.up, normed)
            hidden = linear(layer.down, act, hidden)
        return linear(self.lm_head, self._norm(hidden, self.final_norm))[:, -1, :]

    @torch.inference_mode()
    def prefill(
        self, batch: PaddedBatch, past: LayerStates | None = None
    ) -> tuple[torch.Tensor, LayerStates]:
        """Logits (rows, vocabulary) of each prompt's last token, and every layer's keys and values
        (rows, kv heads, batch.start + width, dim: `past`'s, shared by all rows, then the padded
        prompts'), as transformers' forward over the same batch and cache computes them."""
        logits, keys, values = self.prefill_tokens(*prefill_inputs(batch), past)
        return logits, list(zip(keys, values, strict=True))

    def prefill_tokens(
        self,
        input_ids: torch.Tensor,
        position_ids: torch.Tensor,
        tokens: torch.Tensor,
        mask: torch.Tensor,
        last: torch.Tensor,
        past: LayerStates | None = None,
    ) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
        """`prefill` over plain tensors (`prefill_inputs`), so that compiled.py can compile it as it is;
        returns the logits, then the keys and the values of every layer."""
        rows, width = mask.shape[0], mask.shape[2]
        heads, kv_heads, dim, count = self.heads, self.kv_heads, self.head_dim, input_ids.shape[0]
        hidden = torch.nn.functional.embedding(input_ids, self.embed)
        cos, sin = (
            self.cos[position_ids].unsqueeze(1),
            self.sin[position_ids].unsqueeze(1),
        )  # (tokens, 1, dim)
        keys, values = [], []
        for index, layer in enumerate(self.stack):
            normed = self._norm(hidden, layer.input_norm)
            query = _rotate(layer.q(normed).view(count, heads, dim), cos, sin)
            key = _rotate(layer.k(normed).view(count, kv_heads, dim), cos, sin)
            value = layer.v(normed).view(count, kv_heads, dim)
            query, key, value = (_padded(x, tokens, rows, width) for x in (query, key, value))
            if past is not None:
                past_keys, past_values = past[index]
                key = torch.cat([past_keys.expand(rows, -1, -1, -1), key], dim=2)
                value = torch.cat([past_values.expand(rows, -1, -1, -1), value], dim=2)
            keys.append(key)
            values.append(value)
            attended = torch.nn.functional.scaled_dot_product_attention(
                query, key, value, attn_mask=mask, scale=self.scaling, enable_gqa=True
            )
            attended = attended.transpose(1, 2).reshape(rows * width, heads * dim).index_select(0, tokens)
            hidden = layer.out.forward_add(attended, hidden)
            normed = self._norm(hidden, layer.post_norm)
            hidden = layer.down.forward_add(
                layer.up.forward_mul(normed, layer.gate.forward_silu(normed)), hidden
            )
        return self.lm_head(self._norm(hidden.index_select(0, last), self.final_norm)), keys, values

    def _norm(self, hidden: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """Llama's RMSNorm, in float32 whatever the weights' dtype, as transformers computes it."""
        x = hidden.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return weight * x.to(self.dtype)


def prefill_inputs(
    batch: PaddedBatch,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """FusedDecoder.prefill_tokens' inputs: the prompts' own tokens' ids and positions (tokens,), where
    they sit in the batch's rows x width (`tokens`), the attention mask (rows, 1, width, start + width)
    and each prompt's last token among them (rows,)."""
    width = batch.input_ids.shape[1]
    own = batch.attention_mask[:, batch.start :].bool()
    tokens = own.reshape(-1).nonzero().squeeze(1)
    mask = _prefill_mask(batch.attention_mask.bool(), width, batch.start)
    last = own.sum(1).cumsum(0) - 1
    return batch.input_ids.reshape(-1)[tokens], batch.position_ids.reshape(-1)[tokens], tokens, mask, last


def _padded(x: torch.Tensor, tokens: torch.Tensor, rows: int, width: int) -> torch.Tensor:
    """Own tokens' (tokens, heads, dim) placed in their rows, zeros in the padding: (rows, heads, width,
    dim), as attention takes them."""
    padded = x.new_zeros(rows * width, *x.shape[1:]).index_copy_(0, tokens, x)
    return padded.view(rows, width, *x.shape[1:]).transpose(1, 2)


def _prefill_mask(keys: torch.Tensor, width: int, start: int) -> torch.Tensor:
    """(rows, 1, width, start + width): causal over each row's keys (`keys`: the batch's attention
    mask, the shared prefix then the padded prompts). A padding query, which would see no key at all,
    sees every key instead: its output is never used, and a row of nothing would be NaN."""
    causal = torch.ones(width, start + width, dtype=torch.bool).tril(start)
    mask = causal[None] & keys[:, None, :]
    return (mask | ~mask.any(-1, keepdim=True)).unsqueeze(1)


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    return x * cos + x.roll(x.shape[-1] // 2, -1) * sin


def _rope_table(
    rotary: torch.nn.Module, positions: int, dim: int, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of every position (rows of `dim`) as transformers' rotary embedding computes them,
    sin's first half negated for the roll in `_rotate`."""
    inv_freq = rotary.inv_freq.float()
    freqs = torch.arange(positions, dtype=torch.float32)[:, None] * inv_freq[None, :]
    angles = torch.cat((freqs, freqs), dim=-1)
    cos, sin = angles.cos() * rotary.attention_scaling, angles.sin() * rotary.attention_scaling
    sin[:, : dim // 2] = -sin[:, : dim // 2]
    return cos.to(dtype), sin.to(dtype)
