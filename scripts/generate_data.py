"""Generate the embedded synthetic data set: python scripts/generate_data.py [hydra overrides].

Writes events.parquet, truth_customers.parquet and truth_stages.parquet into the folder of
``data.path`` (a relative path resolves against the directory the command was started from)
and prints a summary, e.g. ``python scripts/generate_data.py data.synthetic.n_customers=1000``.
"""

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from journeyformer.data.synthetic import SyntheticConfig, generate_dataset, summarize


@hydra.main(version_base="1.3", config_path="../configs", config_name="generate_data")
def main(cfg: DictConfig) -> dict[str, Path]:
    settings = OmegaConf.to_container(cfg.data.synthetic, resolve=True)
    if not isinstance(settings, dict):
        raise ValueError(f"data.synthetic must be a mapping of settings, got {settings!r}")
    events_path = Path(str(cfg.data.path))
    if not events_path.is_absolute():
        base = hydra.utils.get_original_cwd() if HydraConfig.initialized() else Path.cwd()
        events_path = Path(base) / events_path
    journeys, paths = generate_dataset(events_path.resolve(), SyntheticConfig.from_dict(settings))
    print(summarize(journeys))
    for name, path in paths.items():
        print(f"{name}: {path}")
    return paths


if __name__ == "__main__":
    main()
