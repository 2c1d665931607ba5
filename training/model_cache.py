"""Loaded policies kept in memory between requests, least recently used dropped first.

Loading a checkpoint costs seconds (a LoRA one is merged into its base on load), so the
playground and the serving process keep the ones in use. Bounded by count and by bytes:
a count alone lets a few large models exhaust memory, bytes alone lets hundreds of tiny
ones pile up.
"""
import threading
from collections import OrderedDict


def model_bytes(model) -> int:
    """Memory held by a model's parameters and buffers."""
    return sum(t.numel() * t.element_size() for t in list(model.parameters()) + list(model.buffers()))


class ModelCache:
    """(model, tokenizer) by checkpoint path, at most `max_models` of them and about `max_bytes`.

    The model just loaded always stays, even if alone it exceeds `max_bytes`: the caller
    asked for it.
    """

    def __init__(self, max_models: int, max_bytes: int | None = None, loader=None):
        self.max_models = max_models
        self.max_bytes = max_bytes
        self._loader = loader
        self._models: OrderedDict = OrderedDict()
        self._sizes: dict[str, int] = {}
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}

    def get(self, path: str):
        """(model, tokenizer) of the policy at `path`, loading it on first use."""
        path = str(path)
        with self._lock:
            if path in self._models:
                self._models.move_to_end(path)
                return self._models[path]
            # One load per path at a time: 16 clients asking for a cold model load it once.
            # Loads of other paths run meanwhile; a cached model never waits behind a load.
            path_lock = self._loading.setdefault(path, threading.Lock())
        with path_lock:
            with self._lock:
                if path in self._models:
                    self._models.move_to_end(path)
                    return self._models[path]
            loaded = self._load(path)
            with self._lock:
                self._models[path] = loaded
                self._sizes[path] = model_bytes(loaded[0])
                self._models.move_to_end(path)
                self._evict()
                self._loading.pop(path, None)
        return loaded

    def _load(self, path: str):
        if self._loader is not None:
            return self._loader(path)
        from training.models import load_policy

        return load_policy(path)

    def _evict(self) -> None:
        while len(self._models) > 1 and (
            len(self._models) > self.max_models
            or (self.max_bytes is not None and sum(self._sizes.values()) > self.max_bytes)
        ):
            old, _ = self._models.popitem(last=False)
            self._sizes.pop(old, None)

    def paths(self) -> list[str]:
        """Loaded paths, least recently used first."""
        with self._lock:
            return list(self._models)

    def total_bytes(self) -> int:
        with self._lock:
            return sum(self._sizes.values())

    def clear(self) -> None:
        with self._lock:
            self._models.clear()
            self._sizes.clear()
