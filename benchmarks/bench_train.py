"""Training throughput of the default model: events (tokens) per second and model FLOP/s as a
share of the fp32 matmul FLOP/s measured on the same machine in the same run.

    .venv/bin/python benchmarks/bench_train.py [--customers 20000] [--steps 60] [--model small]

Not a test. FLOPs are counted with torch.utils.flop_counter on the very batches that were timed
(forward + backward), so padding that length bucketing leaves in is counted as work done.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from torch.utils.flop_counter import FlopCounterMode

from journeyformer.data.batch import MODEL_INPUTS
from journeyformer.machine import cpu_line
from journeyformer.model.config import ModelConfig
from journeyformer.training.datamodule import JourneyDataModule
from journeyformer.training.module import JourneyModule

CONFIG_DIR = str(Path(__file__).resolve().parents[1] / "configs")


def matmul_flops(n: int = 1024, repeats: int = 20) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n**3 * repeats / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=20000)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--model", default="small")
    parser.add_argument(
        "--precision", default="fp32,bf16", help="comma-separated: fp32, bf16 (CPU autocast)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per precision")
    args = parser.parse_args()
    torch.manual_seed(0)
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("train", overrides=[f"model={args.model}", f"data.synthetic.n_customers={args.customers}", "paths.output_dir=/tmp"])
    data = OmegaConf.to_container(cfg.data, resolve=True)
    labels = OmegaConf.to_container(cfg.labels, resolve=True)
    dm = JourneyDataModule(data, labels, batch_size=data["batch_size"], seed=0)
    dm.setup()
    pre = dm.data.preprocessing
    model_cfg = ModelConfig.from_data(OmegaConf.to_container(cfg.model), pre)
    module = JourneyModule(model_cfg.to_dict(), pre.to_dict(), OmegaConf.to_container(cfg.model.optimizer))
    opt = torch.optim.AdamW(module.parameters(), lr=1e-3)
    batches = []
    for batch in dm.train_dataloader():
        batches.append(batch)
        if len(batches) == args.steps + 5:
            break

    def step(batch, precision: str) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            out = module.net(*(batch.inputs[k] for k in MODEL_INPUTS))
            loss = module.weighted(module.losses(batch, out))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    module.train()
    precisions = args.precision.split(",")
    timed = batches[5:]
    seconds: dict[str, list[float]] = {p: [] for p in precisions}
    for p in precisions:  # warm-up
        for batch in batches[:5]:
            step(batch, p)
    for _ in range(args.repeats):  # interleaved, so load changes hit every precision alike
        for p in precisions:
            start = time.perf_counter()
            for batch in timed:
                step(batch, p)
            seconds[p].append(time.perf_counter() - start)
    events = sum(int(b.inputs["lengths"].sum()) for b in timed)
    slots = sum(b.inputs["lengths"].numel() * b.inputs["categorical"].shape[1] for b in timed)
    flops = 0
    for batch in timed:
        with FlopCounterMode(display=False) as counter:
            out = module.net(*(batch.inputs[k] for k in MODEL_INPUTS))
            module.weighted(module.losses(batch, out)).backward()
        flops += counter.get_total_flops()
        opt.zero_grad(set_to_none=True)
    peak = max(matmul_flops() for _ in range(3))
    n_params = sum(p.numel() for p in module.net.parameters())
    print(cpu_line())
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"model={args.model} params={n_params:,} threads={torch.get_num_threads()} batches={len(timed)} batch_size={data['batch_size']}")
    print(f"events (real tokens)   : {events:,}  padding share {1 - events / slots:.1%}")
    print(f"fp32 matmul FLOP/s     : {peak / 1e9:.2f} GFLOP/s (1024x1024 @ 1024x1024, best of 3)")
    print(f"model FLOPs fwd+bwd    : {flops / 1e9:.2f} GFLOP per pass of {len(timed)} batches")
    print("| precision | median s | events/s | steps/s | GFLOP/s | share of fp32 matmul |")
    print("|---|---|---|---|---|---|")
    for p, runs in seconds.items():
        s = statistics.median(runs)
        print(
            f"| {p} | {s:.2f} | {events / s:,.0f} | {len(timed) / s:.1f} | {flops / s / 1e9:.2f} "
            f"| {flops / s / peak:.1%} |"
        )


if __name__ == "__main__":
    main()
