"""Document ingestion: load (bytes → text) → chunk → embed → store, plus guarded URL fetching."""
