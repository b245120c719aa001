"""Loading a chat model for the engine, and turning chat messages into prompt token ids."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from models_registry.engine.attention import use_native_gqa
from models_registry.engine.packed import pack_linear_layers

PRECISIONS = ("auto", "float32", "bfloat16")


class UnsupportedModel(ValueError):
    """The model's architecture is one the batch KV cache cannot serve (e.g. sliding-window layers)."""


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bfloat16 in hardware (AVX512-BF16 or AMX): then bf16 matmuls are about
    twice float32's speed; without it oneDNN emulates them, slower than float32."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as cpuinfo:
            flags = next((line for line in cpuinfo if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def wants_bf16(precision: str) -> bool:
    """A CPU precision setting (float32, bfloat16, or auto: bfloat16 where the CPU has it in hardware)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}")
    return precision == "bfloat16" or (precision == "auto" and cpu_has_bf16())


def weights_dtype(device: torch.device, precision: str = "float32") -> torch.dtype:
    """A model's weights: bf16 on GPUs (half the memory, tensor cores); on CPUs as `precision` says
    (float32 by default: without bf16 in hardware, oneDNN emulates it, slower than float32)."""
    return torch.bfloat16 if device.type == "cuda" or wants_bf16(precision) else torch.float32


def load_chat_model(
    path: str | Path,
    device: str = "cpu",
    precision: str = "float32",
    prepack: bool = True,
    keep_plain: bool = False,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Loads weights and tokenizer from a local directory; never reaches for a model hub.

    On a CPU, `precision` picks float32 or bfloat16 (see wants_bf16), and `prepack` reorders the linear
    layers' weights for oneDNN (packed.py: about twice the decode speed), keeping the plain weights
    too with `keep_plain` (for the compiled one-row decode step: PackedLinear.row).
    """
    target = torch.device(device)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    dtype = weights_dtype(target, precision)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, local_files_only=True)
    check_supported(model)
    model = model.to(target).eval()
    use_native_gqa(model)
    if prepack:
        pack_linear_layers(model, keep_plain=keep_plain)
    return model, tokenizer


def check_supported(model: PreTrainedModel) -> None:
    layer_types = getattr(model.config, "layer_types", None) or []
    if getattr(model.config, "sliding_window", None) and getattr(model.config, "use_sliding_window", True):
        raise UnsupportedModel("sliding-window attention is not supported by the batching engine yet")
    if any(kind != "full_attention" for kind in layer_types):
        raise UnsupportedModel(
            f"layer types {sorted(set(layer_types))} are not supported by the batching engine"
        )


def eos_token_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> frozenset[int]:
    """Every token that ends an answer: the generation config's (one or several) and the tokenizer's."""
    ids: set[int] = set()
    configured = getattr(model.generation_config, "eos_token_id", None)
    if isinstance(configured, int):
        ids.add(configured)
    elif configured:
        ids.update(configured)
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return frozenset(ids)


def chat_prompt_ids(tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, str]]) -> list[int]:
    """The tokenizer's own chat template, ending with the assistant's turn."""
    encoded = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    if hasattr(encoded, "keys"):  # transformers 5 returns a BatchEncoding
        encoded = encoded["input_ids"]
    return list(encoded)


@torch.inference_mode()
def warm_up(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> None:
    """One short forward, so the first real request does not pay for lazy initialisation."""
    ids = chat_prompt_ids(tokenizer, [{"role": "user", "content": "Hello"}])
    device = next(model.parameters()).device
    model(input_ids=torch.tensor([ids], device=device), logits_to_keep=1)
