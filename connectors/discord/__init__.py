"""The Discord adapter (discord.py): slash commands, mentions and threads, ``/kb`` admin commands, feedback.

It only translates between Discord and :class:`bot.service.Lorebot`; :func:`connectors.discord.runner.serve` runs it.
"""
