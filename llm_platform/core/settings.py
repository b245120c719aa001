"""The one settings class: every knob of the platform, read from `LLMP_*` environment variables; and the
process's settings as a FastAPI dependency (SettingsDep)."""

from __future__ import annotations

import os
import secrets
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from fastapi import Depends
from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.requests import HTTPConnection

MIN_JWT_SECRET_BYTES = 32
# A worker's arithmetic on a CPU (models_registry/engine/loader.py: wants_bf16).
Precision = Literal["auto", "float32", "bfloat16"]


class Environment(StrEnum):
    development = "development"
    production = "production"


class InsecureSettings(ValueError):
    """Raised at start-up when production settings are unsafe (e.g. a missing or weak JWT secret)."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LLMP_", env_file=".env", extra="ignore")

    env: Annotated[
        Environment,
        Field(description="development generates missing secrets; production refuses to start without them"),
    ] = Environment.development
    data_dir: Annotated[
        Path, Field(description="Holds the embedded SQLite database and generated secrets")
    ] = Path("./var")
    database_url: Annotated[
        str | None,
        Field(description="Async SQLAlchemy URL (postgresql+psycopg://user@host/db); unset: embedded SQLite"),
    ] = None
    redis_url: Annotated[
        str | None,
        Field(description="redis://host:port/db for limits shared by replicas; unset = in-process stand-ins"),
    ] = None
    redis_max_connections: Annotated[
        int, Field(description="Connections to Redis per API process; past it requests wait for one", ge=1)
    ] = 100
    redis_pool_timeout_s: Annotated[
        float,
        Field(description="How long a request waits for a free Redis connection before answering 503", gt=0),
    ] = 5.0
    host: Annotated[str, Field(description="Address `llmp serve` binds")] = "127.0.0.1"
    port: Annotated[int, Field(description="Port `llmp serve` binds", ge=1, le=65535)] = 8000
    log_level: Annotated[str, Field(description="Python log level of the platform's loggers")] = "INFO"
    log_format: Annotated[
        Literal["text", "json"],
        Field(
            description="text: readable lines; json: one JSON object a line, and one line per request "
            "(request id, tenant, actor, model, status, tokens, latency) in place of uvicorn's access log"
        ),
    ] = "text"
    metrics_tenant_label: Annotated[
        bool,
        Field(
            description="Model-call metrics (API) and running sequences (workers) carry a tenant label; off "
            "for platforms with thousands of tenants, where a series per tenant is too many"
        ),
    ] = True
    opentelemetry: Annotated[
        bool,
        Field(description="FastAPI's OpenTelemetry traces, metrics and logs, sent to the global providers"),
    ] = False

    cors_allow_origins: Annotated[
        list[str],
        Field(description='Browser origins allowed to call the API, as JSON: ["https://app.example.com"]'),
    ] = []
    cors_allow_credentials: Annotated[
        bool,
        Field(description="CORS with cookies and HTTP auth; off: browsers send bearer headers, not cookies"),
    ] = False

    jwt_secret: Annotated[
        SecretStr | None,
        Field(
            description=f"HMAC key for JWTs (>= {MIN_JWT_SECRET_BYTES} bytes); dev generates one in data_dir"
        ),
    ] = None
    jwt_algorithm: Annotated[str, Field(description="JWT signing algorithm (HMAC family)")] = "HS256"
    jwt_issuer: Annotated[str, Field(description="`iss` claim written into and required of every JWT")] = (
        "llm-platform"
    )
    access_token_ttl_s: Annotated[int, Field(description="Lifetime of an access token", ge=30)] = 15 * 60
    refresh_token_ttl_s: Annotated[int, Field(description="Lifetime of a refresh token", ge=60)] = 30 * 86400

    password_hash_memory_kib: Annotated[
        int, Field(description="argon2id memory cost per password hash (OWASP minimum: 19456)", ge=1024)
    ] = 19456
    password_hash_time_cost: Annotated[int, Field(description="argon2id iterations per hash", ge=1)] = 2
    min_password_length: Annotated[int, Field(description="Shortest password accepted for a user", ge=8)] = 10

    login_max_failures_per_account: Annotated[
        int, Field(description="Failed logins allowed per account per login window", ge=1)
    ] = 5
    login_max_failures_per_address: Annotated[
        int, Field(description="Failed logins allowed per client address per login window", ge=1)
    ] = 30
    login_window_s: Annotated[int, Field(description="Sliding window for counting failed logins", ge=1)] = 900

    tenant_requests_per_minute: Annotated[
        int | None, Field(description="Requests per minute given to a new tenant (admins change it)", ge=1)
    ] = 600
    tenant_tokens_per_minute: Annotated[
        int | None, Field(description="Prompt + completion tokens per minute given to a new tenant", ge=1)
    ] = 1_000_000
    tenant_concurrent_requests: Annotated[
        int | None, Field(description="Requests in flight at once allowed to a new tenant", ge=1)
    ] = 64

    cache_memory_bytes: Annotated[
        int, Field(description="Size of the in-process response cache used without Redis", ge=1024)
    ] = 64 * 1024 * 1024

    audit_retention_days: Annotated[
        int, Field(description="`llmp audit prune` deletes audit rows older than this", ge=1)
    ] = 365
    audit_queue_size: Annotated[
        int, Field(description="Audit entries held in memory before they spill to the spool file", ge=1)
    ] = 10_000
    audit_batch_size: Annotated[int, Field(description="Audit rows inserted per transaction", ge=1)] = 500
    audit_spool_dir: Annotated[
        Path | None,
        Field(
            description="Where audit entries wait while Postgres is unreachable; unset: data_dir/audit-spool"
        ),
    ] = None

    max_request_body_bytes: Annotated[
        int, Field(description="Request bodies above this size answer 413", ge=1024)
    ] = 1024 * 1024
    database_pool_size: Annotated[int, Field(description="Connections per API process (Postgres)", ge=1)] = 10
    database_connect_timeout_s: Annotated[
        int, Field(description="Seconds to wait for Postgres to accept a connection (then 503)", ge=1)
    ] = 5

    worker_secret: Annotated[
        SecretStr | None,
        Field(description="Shared secret of the internal worker API; dev generates one in data_dir"),
    ] = None
    worker_heartbeat_s: Annotated[float, Field(description="How often a worker reports itself", gt=0)] = 2.0
    worker_ttl_s: Annotated[
        float, Field(description="A worker silent this long drops out of the registry", gt=0)
    ] = 6.0
    registry_url: Annotated[
        str | None,
        Field(description="Without Redis, workers report to this API URL; unset: http://LLMP_HOST:LLMP_PORT"),
    ] = None
    models_dir: Annotated[
        Path | None, Field(description="Converted bundled models are cached here; unset: data_dir/models")
    ] = None
    serve_workers: Annotated[
        bool, Field(description="In embedded mode, `llmp serve` runs a worker per enabled hf model")
    ] = True
    ready_requires_workers: Annotated[
        bool,
        Field(
            description="/readyz answers 503 while an enabled hf model has no live worker; off: it only "
            "reports them (API replicas stay in service while a model's workers are down)"
        ),
    ] = True
    engine_max_running: Annotated[int, Field(description="Sequences a worker decodes together", ge=1)] = 32
    engine_fair_headroom: Annotated[
        int, Field(description="Extra running slots for tenants below their fair share", ge=0)
    ] = 4
    engine_max_queued: Annotated[int, Field(description="Waiting requests per worker before 503", ge=1)] = 256
    engine_max_seq_len: Annotated[
        int, Field(description="Prompt + completion tokens per sequence (capped by the model)", ge=16)
    ] = 4096
    engine_max_batch_tokens: Annotated[
        int, Field(description="Prompt + max_tokens summed over a worker's admitted sequences", ge=16)
    ] = 131072
    engine_precision: Annotated[
        Precision,
        Field(
            description="A chat worker's weights and arithmetic on a CPU: auto is bfloat16 where the CPU "
            "has it in hardware (AVX512-BF16, AMX), else float32 (GPUs always use bfloat16). In bfloat16 a "
            "temperature-0 answer can change with the requests it is batched with or a reused prompt "
            "prefix, where two tokens nearly tie; float32 for answers that repeat"
        ),
    ] = "auto"
    engine_prepack: Annotated[
        bool,
        Field(
            description="Reorder a CPU model's linear weights for oneDNN at load (chat: ~2x faster decode; "
            "embeddings: ~1.5x faster for a short query)"
        ),
    ] = True
    engine_fused_decode: Annotated[
        bool,
        Field(
            description="Decode steps and prefills of a CPU Llama model through the engine's own fused "
            "forward over its packed weights (~10% faster decode steps and ~7% faster prefills than "
            "transformers' forward; needs LLMP_ENGINE_PREPACK)"
        ),
    ] = True
    engine_compile_decode: Annotated[
        bool,
        Field(
            description="Compile that fused decode step and prefill ahead of time (torch.export and "
            "AOTInductor) after the worker starts, in the background, and keep them in "
            "LLMP_ENGINE_COMPILE_CACHE_DIR: the first start of a model architecture compiles them (2-6 "
            "minutes on 2 vCPUs for SmolLM2, longer while requests run, as compiling pauses for them) and "
            "runs uncompiled meanwhile; later starts load them in seconds; then ~1.15-1.5x faster decode "
            "steps and ~1.1-1.3x faster prefills of new prompts"
        ),
    ] = True
    engine_plain_weights: Annotated[
        bool,
        Field(
            description="Keep a chat model's plain linear weights beside the packed ones, for the compiled "
            "decode step of a single request decoding alone, which reads them at memory speed (oneDNN's "
            "packed kernels read a weight for one row at about half of it): ~1.5x faster tokens for one "
            "stream on 2 vCPUs, for the linear layers' weights held twice (SmolLM2 in float32: +425 MB on "
            "~650 MB; a tied output layer shares the embedding's). Only with LLMP_ENGINE_COMPILE_DECODE"
        ),
    ] = True
    engine_compile_cache_dir: Annotated[
        Path | None,
        Field(
            description="Where compiled decode steps and prefills are kept between starts (code only, no "
            "weights; keyed by model shapes, torch and CPU); unset: data_dir/compiled"
        ),
    ] = None
    embed_batch_max_inputs: Annotated[
        int, Field(description="Inputs per forward pass of an embedding worker, from all its callers", ge=1)
    ] = 64
    embed_batch_max_tokens: Annotated[
        int,
        Field(
            description="Padded tokens (inputs x the longest) per forward pass of an embedding worker", ge=16
        ),
    ] = 8192
    embed_precision: Annotated[
        Precision,
        Field(
            description="An embedding worker's arithmetic on a CPU: auto is bfloat16 where the CPU has it "
            "in hardware (AVX512-BF16, AMX: ~2.3x faster, cosine >= 0.9999 to float32), else float32"
        ),
    ] = "auto"
    upstream_api_keys: Annotated[
        dict[str, SecretStr],
        Field(description='API keys of OpenAI-compatible upstreams by model name, as JSON: {"model": "key"}'),
    ] = {}
    default_max_tokens: Annotated[
        int,
        Field(
            description="Completion tokens allowed when neither the request nor the model's default_params "
            "set max_tokens",
            ge=1,
        ),
    ] = 1024
    default_chat_model: Annotated[
        str, Field(description="Model used by /{tenant}/chat when the request names none")
    ] = "smollm2-135m"
    default_embedding_model: Annotated[
        str,
        Field(
            description="Embedding model of the knowledge bases, and of /{tenant}/embeddings when the "
            "request names none"
        ),
    ] = "all-minilm-l6-v2"
    engine_prefill_chunk_tokens: Annotated[
        int, Field(description="Prompt tokens prefilled per engine step (long prompts take several)", ge=1)
    ] = 256
    engine_prefix_cache_mb: Annotated[
        int,
        Field(
            description="Memory per chat worker for the KV of recent prompts, reused per tenant when a "
            "prompt starts the same way (a system prompt, a conversation's history); 0: off",
            ge=0,
        ),
    ] = 256

    knowledge_max_upload_bytes: Annotated[
        int, Field(description="Knowledge-base uploads above this size answer 413", ge=1024)
    ] = 20 * 1024 * 1024
    knowledge_max_pdf_pages: Annotated[
        int, Field(description="PDFs with more pages than this are refused, not parsed", ge=1)
    ] = 500
    knowledge_extract_timeout_s: Annotated[
        float,
        Field(
            description="Reading a PDF's text that takes longer than this is stopped: the document is failed",
            gt=0,
        ),
    ] = 30.0
    knowledge_extract_memory_mb: Annotated[
        int,
        Field(
            description="Reading a PDF's text that needs more memory than this (in the process reading it, "
            "beyond its start) is stopped: the document is failed",
            ge=64,
        ),
    ] = 1024
    knowledge_max_text_chars: Annotated[
        int, Field(description="A document whose extracted text is longer than this is refused", ge=1000)
    ] = 5_000_000
    knowledge_chunk_tokens: Annotated[
        int, Field(description="Embedding-model tokens per chunk (capped by the model's context)", ge=16)
    ] = 256
    knowledge_chunk_overlap_tokens: Annotated[
        int, Field(description="Tokens a chunk repeats from the end of the one before it", ge=0)
    ] = 32
    knowledge_embed_batch: Annotated[
        int, Field(description="Chunks sent to the embedding worker per call while ingesting", ge=1, le=2048)
    ] = 64
    knowledge_lease_s: Annotated[
        float,
        Field(description="A document `indexing` this long without progress is picked up again", gt=0),
    ] = 60.0
    knowledge_max_indexed_chunks: Annotated[
        int,
        Field(
            description="Chunks an API process keeps indexed in memory, all tenants together (~2 KB each); "
            "past it the least recently searched tenants' indexes are saved and dropped, loaded again at "
            "their next search",
            ge=1,
        ),
    ] = 1_000_000
    knowledge_index_dir: Annotated[
        Path | None,
        Field(
            description="Where API processes keep tenants' knowledge indexes between starts (saved at "
            "shutdown and when dropped from memory); unset: data_dir/knowledge"
        ),
    ] = None
    knowledge_ann_min_chunks: Annotated[
        int,
        Field(
            description="A tenant's chunks past which its vectors are searched through an inverted file "
            "(FAISS IVF, probing a third of its lists) instead of a scan of all (1000 at the least); "
            "0: always a scan",
            ge=0,
        ),
    ] = 50_000
    knowledge_poll_s: Annotated[
        float, Field(description="How often ingestion looks for queued and abandoned documents", gt=0)
    ] = 2.0

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Settings:
        if self.env is Environment.production:
            secret = self.jwt_secret.get_secret_value() if self.jwt_secret else ""
            if len(secret.encode()) < MIN_JWT_SECRET_BYTES:
                raise InsecureSettings(
                    f"LLMP_JWT_SECRET must be set to at least {MIN_JWT_SECRET_BYTES} bytes in production"
                )
            worker_secret = self.worker_secret.get_secret_value() if self.worker_secret else ""
            if len(worker_secret.encode()) < MIN_JWT_SECRET_BYTES:
                raise InsecureSettings(
                    f"LLMP_WORKER_SECRET must be set to at least {MIN_JWT_SECRET_BYTES} bytes in production"
                )
        return self

    def new_tenant_limits(self) -> dict[str, int | None]:
        return {
            "requests_per_minute": self.tenant_requests_per_minute,
            "tokens_per_minute": self.tenant_tokens_per_minute,
            "concurrent_requests": self.tenant_concurrent_requests,
        }

    @property
    def embedded(self) -> bool:
        """True when no database URL is configured: SQLite under data_dir and in-process stand-ins."""
        return self.database_url is None

    @property
    def database_file(self) -> Path:
        """The embedded SQLite database (when no database URL is configured)."""
        return self.data_dir / "llmp.db"

    @cached_property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        self._make_data_dir()
        # SQLite would create the file 0644 (and its -wal and -shm files copy that mode); it holds
        # password and key hashes, so it is created private, and one left readable by an older version
        # is made private.
        os.close(os.open(self.database_file, os.O_CREAT | os.O_WRONLY, 0o600))
        if self.database_file.stat().st_mode & 0o077:
            self.database_file.chmod(0o600)
        return f"sqlite+aiosqlite:///{self.database_file.resolve()}"

    @cached_property
    def resolved_jwt_secret(self) -> str:
        """The configured secret, or (development only) one generated once and kept under data_dir."""
        if self.jwt_secret is not None:
            return self.jwt_secret.get_secret_value()
        return self._generated_secret("jwt_secret")

    @cached_property
    def resolved_worker_secret(self) -> str:
        if self.worker_secret is not None:
            return self.worker_secret.get_secret_value()
        return self._generated_secret("worker_secret")

    @property
    def resolved_registry_url(self) -> str:
        return self.registry_url or f"http://{self.host}:{self.port}"

    @property
    def resolved_audit_spool_dir(self) -> Path:
        return self.audit_spool_dir or self.data_dir / "audit-spool"

    @property
    def resolved_knowledge_index_dir(self) -> Path:
        return self.knowledge_index_dir or self.data_dir / "knowledge"

    @property
    def resolved_models_dir(self) -> Path:
        return self.models_dir or self.data_dir / "models"

    @property
    def resolved_compile_cache_dir(self) -> Path:
        return self.engine_compile_cache_dir or self.data_dir / "compiled"

    def _make_data_dir(self) -> None:
        # Private: it holds the embedded database and the generated secrets. An existing directory keeps
        # the mode its owner chose.
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)

    def _generated_secret(self, name: str) -> str:
        secret_file = self.data_dir / name
        if not secret_file.exists():
            self._make_data_dir()
            # Written aside, then linked into place: two processes starting at once agree on one
            # secret, and neither ever reads a half-written file.
            scratch = self.data_dir / f".{name}.{secrets.token_hex(8)}"
            scratch.write_text(secrets.token_urlsafe(48), encoding="utf-8")
            scratch.chmod(0o600)
            try:
                os.link(scratch, secret_file)
            except FileExistsError:
                pass
            finally:
                scratch.unlink()
        return secret_file.read_text(encoding="utf-8").strip()


def settings_help() -> str:
    """One line per setting, for `llmp serve --help` and the README table."""
    lines = []
    for name, field in Settings.model_fields.items():
        default = field.default
        shown = "unset" if default is None else str(default)
        lines.append(f"LLMP_{name.upper()} (default: {shown}): {field.description}")
    return "\n".join(lines)


async def get_settings(connection: HTTPConnection) -> Settings:
    return connection.app.state.platform.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]
