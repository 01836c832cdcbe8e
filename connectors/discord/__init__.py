"""The Discord adapter (discord.py): slash commands, mentions and threads, ``/kb`` admin commands, feedback.

It only translates between Discord and :class:`bot.service.Lorebot`; start it with :func:`run_discord`.
"""

from connectors.discord.runner import run_discord

__all__ = ["run_discord"]
