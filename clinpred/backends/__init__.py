"""Embedding backends: one interface, a registry, and an on-disk cache.

```python
from clinpred.backends import create_backend, list_backends, CachedBackend, EmbeddingCache
backend = create_backend("gemma-base", {"truncate_dim": 256})
cached = CachedBackend(backend, EmbeddingCache())       # a text is embedded once per fingerprint
vectors = cached.embed(texts, role="document")          # float32, unit rows
```
Nothing here imports torch: model backends load their libraries when first used.
"""

from clinpred.backends.base import EmbeddingBackend, Role, l2_normalise
from clinpred.backends.cache import CachedBackend, EmbeddingCache, default_cache_root
from clinpred.backends.registry import BackendStatus, create_backend, list_backends, parse_settings

__all__ = [
    "BackendStatus",
    "CachedBackend",
    "EmbeddingBackend",
    "EmbeddingCache",
    "Role",
    "create_backend",
    "default_cache_root",
    "l2_normalise",
    "list_backends",
    "parse_settings",
]
