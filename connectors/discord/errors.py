"""The Discord side of the single error path: every failure becomes a visible reply with an error id.

:func:`bot.failures.describe_failure` logs the details under a fresh id and gives the short text users see;
this module only decides where that text goes for an interaction.
"""

from __future__ import annotations

import logging

import discord
from discord import app_commands

from bot.errors import PermissionDenied
from bot.failures import describe_failure

log = logging.getLogger(__name__)


def unwrap(error: BaseException) -> BaseException:
    """The exception a command raised (discord.py wraps it once), with failed admin checks as the core's error."""
    if isinstance(error, app_commands.CommandInvokeError):
        return error.original
    if isinstance(error, app_commands.CheckFailure):
        return PermissionDenied(f"discord check failed: {error}")
    return error


async def report_interaction_failure(interaction: discord.Interaction, error: BaseException) -> None:
    """Replace the deferred response with the apology, or answer privately if nothing was sent yet."""
    failure = describe_failure(unwrap(error))
    try:
        if interaction.response.is_done():
            await interaction.edit_original_response(content=failure.user_message, embed=None, view=None)
        else:
            await interaction.response.send_message(failure.user_message, ephemeral=True)
    except discord.HTTPException as exc:
        log.warning("could not show error %s for interaction %d: %s", failure.error_id, interaction.id, exc)
