"""Small helpers shared by every job's configuration handling (no heavy imports)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from journeyformer.errors import ConfigError

log = logging.getLogger(__name__)


def plain(cfg: DictConfig | dict | None) -> dict[str, Any]:
    """A Hydra/OmegaConf node (or a mapping) as plain, resolved Python values."""
    if cfg is None:
        return {}
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    return dict(cfg)


def events_path(cfg: Mapping[str, Any], command: str) -> str:
    """The events a command reads: ``data.path``, the one name every command uses. The old
    ``input=`` of predict, evaluate and monitor is still read, with a deprecation warning."""
    data = cfg.get("data") or {}
    path = data.get("path") if data.get("path") not in (None, "???") else None
    old = cfg.get("input") if cfg.get("input") not in (None, "???") else None
    if old is not None:
        if path is not None and str(path) != str(old):
            raise ConfigError(
                f"{command}: input={old} and data.path={path} name different events; input= is "
                "the deprecated name of data.path: give only data.path="
            )
        log.warning(
            "%s: input= is deprecated and will be removed; use data.path=%s (the name every "
            "command uses for its events)", command, old,
        )  # fmt: skip
        path = old
    if path is None:
        raise ConfigError(f"{command}: no events given; add data.path=<a Parquet/CSV file, a directory or a glob>")
    return str(path)


def schema_overrides(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The ``data`` settings that override a bundle's event schema (null and empty ones, and
    ``data.path``, left out)."""
    return {k: v for k, v in dict(cfg.get("data") or {}).items() if k != "path" and v not in (None, {})}


def refuse_unused(settings: Mapping[str, Any], used: Iterable[str], where: str, why: str) -> None:
    """Raise when a setting of ``settings`` that is not null is not among ``used``: an override
    the command would silently drop. ``where``: the settings' prefix (``data.``); ``why``: what
    to do instead."""
    unused = sorted(k for k, v in settings.items() if k not in set(used) and _given(v))
    if unused:
        names = ", ".join(f"{where}{k}={settings[k]!r}" for k in unused)
        raise ConfigError(f"{names}: not used here ({why}); remove {'it' if len(unused) == 1 else 'them'}")


def _given(value: Any) -> bool:
    """A setting that is set: not null, and a mapping with at least one entry set."""
    if isinstance(value, Mapping):
        return any(_given(v) for v in value.values())
    return value is not None and value != []


def shipped(relative: str) -> dict[str, Any]:
    """A config file shipped in the package (``journeyformer/configs/<relative>``) as plain
    values: where a Python default must equal the config's, it reads it from there."""
    import yaml

    path = Path(__file__).resolve().parent / "configs" / relative
    return yaml.safe_load(path.read_text()) or {}
