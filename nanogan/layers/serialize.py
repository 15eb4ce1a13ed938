"""Architectures as JSON-safe configs, so a checkpoint rebuilds its models without code.

Every module remembers the arguments it was constructed with; ``module_to_config`` turns them into
plain dicts (children of a ``Sequential`` recursively) and ``module_from_config`` calls the
constructors again. Weights travel separately, in the state dict.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import Module

_SKIP = {"rng"}  # initialisation randomness is not architecture


def _encode(v: Any) -> Any:
    if isinstance(v, Module):
        return module_to_config(v)
    if isinstance(v, tuple | list):
        return [_encode(x) for x in v]
    if isinstance(v, np.dtype) or (isinstance(v, type) and issubclass(v, np.generic)):
        return {"dtype": np.dtype(v).name}
    if isinstance(v, np.generic):
        return v.item()
    if v is None or isinstance(v, bool | int | float | str):
        return v
    raise TypeError(f"cannot serialise constructor argument {v!r} of type {type(v).__name__}")


def _decode(v: Any) -> Any:
    if isinstance(v, dict) and "type" in v:
        return module_from_config(v)
    if isinstance(v, dict) and set(v) == {"dtype"}:
        return np.dtype(v["dtype"])
    if isinstance(v, list):
        return tuple(_decode(x) for x in v)
    return v


def module_to_config(module: Module) -> dict[str, Any]:
    """``{"type": class name, "args": [...], "kwargs": {...}}``, JSON-serialisable."""
    args, kwargs = getattr(module, "_init_args", ((), {}))
    return {
        "type": type(module).__name__,
        "args": [_encode(a) for a in args],
        "kwargs": {k: _encode(v) for k, v in kwargs.items() if k not in _SKIP},
    }


def module_from_config(config: dict[str, Any]) -> Module:
    """Rebuild a module (freshly initialised) from :func:`module_to_config`'s output."""
    from .. import layers

    name = config.get("type")
    cls = getattr(layers, str(name), None)
    if not (isinstance(cls, type) and issubclass(cls, Module)) or cls is Module:
        raise ValueError(f"unknown layer type {name!r} in model config")
    args = [_decode(a) for a in config.get("args", [])]
    kwargs = {k: _decode(v) for k, v in config.get("kwargs", {}).items()}
    return cls(*args, **kwargs)
