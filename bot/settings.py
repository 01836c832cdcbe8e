"""Lorebot settings: the core's part of the environment (and ``.env``).

The entry point builds one :class:`Settings` and passes it down; nothing calls ``os.environ``. Each connector
reads its own part the same way, with its own prefix (``connectors.slack.settings``: ``SLACK_*``,
``connectors.discord.settings``: ``DISCORD_*``).
Names are the environment variable names (case-insensitive), e.g. ``DATABASE_URL``, ``LLM_BASE_URL``.
Secrets are :class:`~pydantic.SecretStr` so they never appear in logs or reprs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from platformdirs import user_data_dir
from pydantic import BeforeValidator, Field, SecretStr
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

EmbeddingBackend = Literal["minilm", "e5", "openai"]
LocalPrecision = Literal["bfloat16", "float32"]


def _default_data_dir() -> Path:
    return Path(user_data_dir("lorebot", appauthor=False))


def _split_csv(value: object) -> object:
    """``"a, b"`` → ``["a", "b"]``: lists of ids are written comma-separated in the environment."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


CsvList = Annotated[list[str], NoDecode, BeforeValidator(_split_csv)]


class Settings(BaseSettings):
    """Every setting Lorebot understands; see ``.env.example`` for a documented list."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    # --- storage -------------------------------------------------------------------------------------
    database_url: SecretStr | None = Field(
        default=None, description="Postgres URL with pgvector; unset = embedded server in data_dir"
    )
    data_dir: Path = Field(default_factory=_default_data_dir, description="Embedded Postgres, models, adapters")
    db_pool_min: int = Field(default=1, ge=0)
    db_pool_max: int = Field(default=8, ge=1)
    embedded_pg_shared_buffers: str = Field(default="256MB", description="shared_buffers of the embedded server")

    # --- embeddings ----------------------------------------------------------------------------------
    embedding_backend: EmbeddingBackend = Field(default="minilm", description="minilm | e5 | openai")
    embedding_model: str = Field(default="", description="Model name for the openai backend")
    embedding_base_url: str = Field(default="", description="OpenAI-compatible /v1 URL for embeddings")
    embedding_api_key: SecretStr | None = None
    embedding_dim: int = Field(default=384, ge=1, le=16000, description="Must match the model's output size")
    embedding_batch_size: int = Field(default=32, ge=1)
    embedding_timeout_s: float = Field(default=30.0, gt=0, description="Timeout of one openai-backend request")

    # --- ingestion -----------------------------------------------------------------------------------
    default_scope: str = "default"
    max_document_bytes: int = Field(default=20 * 1024 * 1024, ge=1)
    max_chunks_per_document: int = Field(default=2000, ge=1)
    chunk_tokens: int = Field(default=256, ge=32)
    chunk_overlap_tokens: int = Field(default=32, ge=0)
    fetch_timeout_s: float = Field(default=15.0, gt=0)
    fetch_max_redirects: int = Field(default=5, ge=0)
    fetch_allow_private: bool = Field(
        default=False, description="Allow URLs on private/loopback networks (only for trusted intranets)"
    )
    fetch_allowed_hosts: CsvList = Field(
        default_factory=list,
        description="host or host:port that may resolve to private addresses (narrower than fetch_allow_private); "
        "cloud metadata addresses stay refused",
    )

    # --- retrieval -----------------------------------------------------------------------------------
    retrieval_k: int = Field(default=5, ge=1, le=50)
    retrieval_candidates: int = Field(default=40, ge=1, description="Candidates per method before fusion")
    keyword_budget: int = Field(
        default=1000,
        ge=1,
        description="Most chunks keyword search may rank: those of its rarest terms and term pairs",
    )
    keyword_budget_share: float = Field(
        default=0.001,
        gt=0,
        le=1,
        description="Chunks keyword search ranks as a share of those searched: at least 250, at most KEYWORD_BUDGET",
    )
    hnsw_ef_search: int = Field(default=80, ge=1)
    rrf_k: int = Field(default=60, ge=1)
    min_similarity: float = Field(
        default=0.25, description="Below this cosine similarity and with no keyword hit, a chunk is irrelevant"
    )

    # --- answering -----------------------------------------------------------------------------------
    context_sentences: int = Field(
        default=0,
        ge=0,
        description="Sentences of the retrieved passages the model reads, those sharing most words with the question "
        "(0 = whole passages): for a small model trained on such passages (bot.answer.focus)",
    )
    llm_base_url: str = Field(default="", description="OpenAI-compatible /v1 URL; unset = embedded local model")
    llm_model: str = Field(default="lorebot-local", description="Model (or LoRA adapter) name to request")
    llm_api_key: SecretStr = SecretStr("not-needed")
    llm_timeout_s: float = Field(default=60.0, gt=0)
    llm_connect_timeout_s: float = Field(default=3.0, gt=0)
    llm_max_retries: int = Field(default=1, ge=0)
    llm_deadline_s: float = Field(
        default=45.0, gt=0, description="One answer's limit at the LLM: condensing, every retry and wait, the stream"
    )
    llm_temperature: float = Field(default=0.1, ge=0)
    llm_max_tokens: int = Field(default=512, ge=1)
    history_turns: int = Field(default=4, ge=0)
    answer_history: bool = Field(
        default=True,
        description="The answer prompt carries the earlier turns (off: the model is asked the follow-up as the "
        "condense step rewrote it, without them; a small model copies earlier answers)",
    )

    # --- embedded local model (used when llm_base_url is unset) --------------------------------------
    local_llm_host: str = "127.0.0.1"
    local_llm_port: int = Field(default=8765, ge=1, le=65535)
    local_llm_model_path: Path | None = Field(default=None, description="GGUF or HF folder; unset = Gemma 3 270M")
    local_llm_adapter_path: Path | None = Field(
        default=None, description="PEFT LoRA adapter folder; unset = the adapter shipped with Lorebot"
    )
    local_llm_use_adapter: bool = True
    local_llm_precision: LocalPrecision = Field(
        default="bfloat16", description="bfloat16: Gemma's training precision, ~2x faster on CPU; float32: as loaded"
    )
    local_llm_start_timeout_s: float = Field(
        default=300.0, gt=0, description="How long to wait for the local model server to load and answer /health"
    )

    # --- access and scopes ---------------------------------------------------------------------------
    admin_user_ids: CsvList = Field(default_factory=list, description="platform:user ids, e.g. slack:U123")
    admin_webhooks: CsvList = Field(
        default_factory=list,
        description="slack=URL / discord=URL incoming webhooks that tell admins when another SFT adapter serves",
    )
    scope_map: dict[str, list[str]] = Field(
        default_factory=dict,
        description='JSON: {"slack:T1:C1": ["support"], "discord:G1": ["docs"]}; most specific key wins',
    )
    rate_limit_per_minute: int = Field(default=10, ge=0, description="Questions per user per minute; 0 = off")

    # --- support desk (chat settings, /kb desk ..., win over these) -----------------------------------
    desk_channel_modes: dict[str, Literal["mention", "questions", "threads"]] = Field(
        default_factory=dict, description='JSON: {"slack:T1:C1": "questions"}; keys as in SCOPE_MAP, most specific wins'
    )
    desk_footers: dict[str, str] = Field(
        default_factory=dict, description='JSON: {"clinic": "Not medical advice - call the clinic for urgent matters"}'
    )
    desk_handover: dict[str, list[str]] = Field(
        default_factory=dict, description='JSON: {"slack:clinic": ["C0NURSES", "S0NURSES"]}: channel, group to mention'
    )
    desk_redact_personal_data: bool = Field(
        default=True, description="Replace e-mail addresses and phone numbers in reports and SFT data"
    )

    # --- operations ----------------------------------------------------------------------------------
    health_host: str = "0.0.0.0"
    health_port: int = Field(default=8080, ge=0, le=65535, description="/healthz and /metrics; 0 = off")
    shutdown_grace_s: float = Field(default=25.0, ge=0)
    health_check_timeout_s: float = Field(default=2.0, gt=0, description="Per-check timeout of /healthz")
    local_api_host: str = Field(default="127.0.0.1", description="`lorebot serve local` HTTP API address")
    local_api_port: int = Field(default=8088, ge=0, le=65535)
    log_level: str = "INFO"
