"""Train journeyformer: python scripts/train.py [hydra overrides], e.g. model=tiny trainer.max_epochs=1."""

import hydra
from omegaconf import DictConfig

from journeyformer.pipelines import train


@hydra.main(version_base="1.3", config_path="../configs", config_name="train")
def main(cfg: DictConfig) -> float | None:
    result = train(cfg)
    # The value a sweeper minimises/maximises: test churn AUROC when evaluated.
    test = result.metrics.get("test", {}).get("model", {})
    return test.get("churn", {}).get("auroc")


if __name__ == "__main__":
    main()
