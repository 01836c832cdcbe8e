"""The Discord connector's settings: ``DISCORD_*`` in the environment or ``.env`` (see ``.env.example``)."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.settings import CsvList


class DiscordSettings(BaseSettings):
    """Built by the entry point (``lorebot serve discord``) and passed down, like the core's settings."""

    model_config = SettingsConfigDict(env_prefix="DISCORD_", env_file=".env", env_file_encoding="utf-8", extra="ignore")

    token: SecretStr | None = None
    dev_guild_ids: CsvList = Field(default_factory=list, description="Sync commands per guild (dev)")
    admin_role_ids: CsvList = Field(default_factory=list)
    admin_user_ids: CsvList = Field(default_factory=list)
    reply_in_thread: bool = False
    message_content_intent: bool = False
    max_attachment_bytes: int = Field(default=10 * 1024 * 1024, ge=1)
