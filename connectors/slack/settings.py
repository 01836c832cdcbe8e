"""The Slack connector's settings: ``SLACK_*`` in the environment or ``.env`` (see ``.env.example``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.settings import CsvList


class SlackSettings(BaseSettings):
    """Built by the entry point (``lorebot serve slack``) and passed down, like the core's settings."""

    model_config = SettingsConfigDict(env_prefix="SLACK_", env_file=".env", env_file_encoding="utf-8", extra="ignore")

    bot_token: SecretStr | None = None
    app_token: SecretStr | None = None
    signing_secret: SecretStr | None = None
    mode: Literal["socket", "http"] = "socket"
    api_url: str = "https://slack.com/api/"
    http_host: str = Field(default="0.0.0.0", description="Bind address in HTTP mode")
    http_port: int = Field(default=3000, ge=0, le=65535, description="HTTP mode port; 0 = any free port")
    http_path: str = "/slack/events"
    admin_user_ids: CsvList = Field(default_factory=list)
    admin_usergroup_ids: CsvList = Field(default_factory=list)
    workspace_admins_are_admins: bool = False
    ignore_other_bots: bool = True
