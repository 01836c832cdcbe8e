"""The embedded local model: an OpenAI-compatible HTTP server on 127.0.0.1 used when LLM_BASE_URL is unset."""
