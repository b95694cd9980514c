"""Export a checkpoint to an ONNX bundle.

    python scripts/export.py checkpoint=<run_dir>/best.ckpt [output=<dir>]
    python scripts/export.py checkpoint=<run_dir>/best.ckpt quantize=true data.path=<events>
"""

import hydra
from omegaconf import DictConfig

from journeyformer.pipelines import export


@hydra.main(version_base="1.3", config_path="../configs", config_name="export")
def main(cfg: DictConfig) -> None:
    export(cfg)


if __name__ == "__main__":
    main()
