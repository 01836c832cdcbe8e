"""Connected sources kept in sync: a docs site (``web``), a ``sitemap``, a local ``folder``, a ``git`` repository.

- :mod:`bot.sources.model`: the source, its options and schedule, a sync's report.
- :mod:`bot.sources.loader` and one module per kind: LangChain ``BaseLoader``\\ s whose every fetch goes through
  the SSRF guard and size limits of :mod:`bot.ingest.fetch` and whose bytes go through :mod:`bot.ingest.loaders`.
- :mod:`bot.sources.sync`: one incremental, exact sync; :mod:`bot.sources.manager`: admin-only, audited
  operations; :mod:`bot.sources.scheduler`: scheduled syncs in ``serve`` under a per-source advisory lock.
"""
