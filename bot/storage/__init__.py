"""Storage: the only package that speaks SQL, psycopg and pgvector.

- :mod:`bot.storage.embedded` starts the embedded Postgres + pgvector server when no ``DATABASE_URL`` is set.
- :mod:`bot.storage.migrate` applies the numbered SQL files in ``migrations/`` under an advisory lock.
- :mod:`bot.storage.pool` opens the async connection pool the entry point injects everywhere else.
- The repository modules (documents, chunks, conversations, feedback, audit, events) hold named SQL constants
  and small async functions taking a connection or the pool.
"""
