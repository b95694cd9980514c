"""Evaluate an ONNX bundle against baselines: metrics.json + report.html.

    python scripts/evaluate.py bundle=<dir> input=<events> [as_of=2025-12-01 output=<dir>]
"""

import hydra
from omegaconf import DictConfig, OmegaConf

from journeyformer.evaluation.report import evaluate_from_config, headline_table


@hydra.main(version_base="1.3", config_path="../configs", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    ev, out = evaluate_from_config(OmegaConf.to_container(cfg, resolve=True))
    print(headline_table(ev))
    if "calibration" in ev.metrics:
        c = ev.metrics["calibration"]
        print(f"churn ECE before/after temperature scaling (T={c['temperature']:.3f}): {c['ece_before']:.4f} -> {c['ece_after']:.4f}")
    print(f"report: {out / 'report.html'}")


if __name__ == "__main__":
    main()
