"""Test helpers: tiny Hydra configs composed outside a Hydra run."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, open_dict

CONFIG_DIR = str(Path(__file__).resolve().parents[1] / "configs")
SMALL_CUSTOMERS = 1500


def compose_train(overrides: list[str], run_dir: Path) -> DictConfig:
    """The train config with ``overrides``, outside a Hydra run (no ${hydra:...} needed)."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides, return_hydra_config=False)
    with open_dict(cfg):
        cfg.paths.output_dir = str(run_dir)
        cfg.run_dir = str(run_dir)
    return cfg


def tiny_overrides(events: Path) -> list[str]:
    """A seconds-long CPU run on ``events``."""
    return [
        "model=tiny",
        f"data.path={events}",
        "data.synthetic=null",
        "trainer.max_epochs=2",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
        "logger=csv",
        "seed=7",
    ]


