"""Score events with an ONNX bundle.

    python scripts/predict.py bundle=<dir> input=<events> [output=predictions.parquet]
    python scripts/predict.py bundle=<dir> input=<events> as_of=2025-12-31T00:00:00 device=cuda

Runs without PyTorch: it calls journeyformer.inference (pipelines.predict is the same function,
but the pipelines module imports torch for training).
"""

import hydra
from omegaconf import DictConfig, OmegaConf

from journeyformer.inference.job import predict_from_config


@hydra.main(version_base="1.3", config_path="../configs", config_name="predict")
def main(cfg: DictConfig) -> None:
    predict_from_config(OmegaConf.to_container(cfg, resolve=True))  # logs its summary


if __name__ == "__main__":
    main()
