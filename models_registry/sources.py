"""Where a catalogue entry's weights are on this machine: never fetched from a hub at run time."""

from __future__ import annotations

from pathlib import Path

from models_registry.bundled import BUNDLED_PREFIX, resolve_bundled


class ModelSourceMissing(RuntimeError):
    pass


def resolve_model_dir(source: str, models_dir: Path) -> Path:
    """A local directory, `bundled:NAME` (converted once into models_dir), or a Hugging Face id that
    must already be in the local Hugging Face cache."""
    if source.startswith(BUNDLED_PREFIX):
        return resolve_bundled(source, models_dir)
    local = Path(source).expanduser()
    if local.is_dir():
        return local
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(source, local_files_only=True))
    except (LocalEntryNotFoundError, ValueError) as exc:
        raise ModelSourceMissing(
            f"{source!r} is neither a directory nor in the local Hugging Face cache (nothing is downloaded)"
        ) from exc
