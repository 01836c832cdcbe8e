"""Lorebot core: platform-free knowledge store, ingestion, hybrid retrieval and cited answers.

Adapters in ``connectors/`` import what they need from here; the public API is :class:`bot.service.Lorebot`
together with the domain types in :mod:`bot.domain` and the errors in :mod:`bot.errors`.
Importing ``bot`` is cheap: no model, pool or event loop is created at import time.
"""

__version__ = "0.1.0"
