"""Small helpers shared by every job's configuration handling (no heavy imports)."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf


def plain(cfg: DictConfig | dict | None) -> dict[str, Any]:
    """A Hydra/OmegaConf node (or a mapping) as plain, resolved Python values."""
    if cfg is None:
        return {}
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    return dict(cfg)
