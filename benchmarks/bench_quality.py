"""The model against gradient boosting and the simple baselines, on both synthetic worlds and
several seeds: means, seed spread and paired bootstrap intervals of each headline metric.

    .venv/bin/python benchmarks/bench_quality.py [--worlds synthetic synthetic_purchases]
        [--seeds 42 43 44] [--out outputs/bench_quality.json] [override ...]
    .venv/bin/python benchmarks/bench_quality.py --summarize outputs/bench_quality.json

Each (world, seed) is one default ``make train`` run (``data=<world> seed=<seed>``, any extra
Hydra overrides appended) on that world's default data; the seed changes the model's
initialisation and batch order and the boosting baseline's bagging. Per world and task it
prints the model's headline metric, LightGBM's and the best other baseline's (mean and
standard deviation over seeds), the mean of model minus the best baseline, each seed's 95%
interval and verdict, and the training time. Runs go seed by seed over the worlds and the
results file is rewritten after each, so an interrupted benchmark keeps the runs it finished
(``--summarize`` prints their table). Not a test.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import open_dict

from journeyformer.io import atomic_write_text
from journeyformer.pipelines import train
from journeyformer.tasks import registry
from journeyformer.tasks.boosting import NAME as BOOSTING

CONFIG_DIR = str(Path(__file__).resolve().parents[1] / "configs")
TASKS = ("churn", "next_action", "stage", "value")


def run(world: str, seed: int, overrides: list[str], root: Path) -> dict:
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[f"data={world}", f"seed={seed}", "trainer.enable_progress_bar=false",
                       "trainer.enable_model_summary=false", *overrides],
        )  # fmt: skip
    with open_dict(cfg):
        cfg.run_dir = str(root / f"{world}_s{seed}")
        cfg.paths.output_dir = cfg.run_dir
    cpu, wall = time.process_time(), time.perf_counter()
    result = train(cfg)
    metrics = result.metrics
    metrics["cpu_seconds"] = time.process_time() - cpu
    metrics["wall_seconds"] = time.perf_counter() - wall
    return metrics


def summarize(world: str, runs: dict[int, dict]) -> list[str]:
    def ms(values: list[float]) -> str:
        if len(values) < 2:
            return f"{values[0]:.4f}" if values else "-"
        return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"

    seeds = sorted(runs)
    if not seeds:
        return [f"world {world}: no completed run"]
    lines = [f"world {world}: seeds {seeds}", ""]
    lines.append(f"{'task':<12} {'metric':<9} {'model':>17} {'lightgbm':>17} {'best other':>17}"
                 f"  {'model - best':>12}  per-seed 95% interval and verdict")  # fmt: skip
    for task in TASKS:
        tests = [runs[s]["test"] for s in seeds if task in runs[s]["test"]["model"]]
        if not tests:
            lines.append(f"{task:<12} (head switched off: nothing to learn)")
            continue
        key = registry.get(task).headline
        model = [t["model"][task][key] for t in tests]
        boost = [t["baselines"][task][BOOSTING][key] for t in tests if BOOSTING in t["baselines"][task]]
        other = [max(v[key] for n, v in t["baselines"][task].items() if n != BOOSTING) for t in tests]
        delta = [t["intervals"][task]["delta"] for t in tests]
        ivs = "  ".join(
            f"[{t['intervals'][task]['low']:+.4f}, {t['intervals'][task]['high']:+.4f}] "
            f"{t['intervals'][task]['verdict']} vs {t['intervals'][task]['baseline']}"
            for t in tests
        )
        lines.append(f"{task:<12} {key:<9} {ms(model):>17} {ms(boost):>17} {ms(other):>17}"
                     f"  {statistics.mean(delta):+12.4f}  {ivs}")  # fmt: skip
        simple = [t["intervals_without_boosting"][task] for t in tests if task in t.get("intervals_without_boosting", {})]
        if simple:
            lines.append(" " * 22 + "against the best simple baseline: " + "  ".join(
                f"{iv['delta']:+.4f} [{iv['low']:+.4f}, {iv['high']:+.4f}] {iv['verdict']} vs {iv['baseline']}"
                for iv in simple
            ))  # fmt: skip
    times = [runs[s]["train_seconds"] for s in seeds]
    cpu = [runs[s]["cpu_seconds"] for s in seeds]
    lines.append(f"make train wall time {ms(times)} s, CPU time of the process {ms(cpu)} s")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worlds", nargs="+", default=["synthetic", "synthetic_purchases"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[42, 43, 44])
    parser.add_argument("--out", default="outputs/bench_quality.json")
    parser.add_argument("--root", default="outputs/bench_quality_runs")
    parser.add_argument(
        "--summarize", metavar="JSON", help="print the table of a results file (e.g. an interrupted run's), exit"
    )
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every run")
    args = parser.parse_args()
    if args.summarize:
        saved = json.loads(Path(args.summarize).read_text())["results"]
        for world, runs in saved.items():
            print("\n".join(summarize(world, {int(s): r for s, r in runs.items()})) + "\n")
        return
    logging.basicConfig(level=logging.WARNING)
    root = Path(args.root)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    # Seed by seed (every world's first seed first), and the results file rewritten after every
    # run, so an interrupted benchmark keeps complete seeds (``--summarize`` prints their table).
    results: dict[str, dict[int, dict]] = {world: {} for world in args.worlds}
    for seed in args.seeds:
        for world in args.worlds:
            results[world][seed] = run(world, seed, args.overrides, root)
            saved = {"argv": sys.argv[1:], "results": results}
            atomic_write_text(out, json.dumps(saved, indent=1, default=str))
    for world, runs in results.items():
        print("\n".join(summarize(world, runs)) + "\n")
    print(f"results: {out}")


if __name__ == "__main__":
    main()
