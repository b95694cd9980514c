"""Training throughput of the default model: events (tokens) per second and model FLOP/s as a
share of the fp32 matmul FLOP/s measured on the same machine in the same run.

    .venv/bin/python benchmarks/bench_train.py [--customers 20000] [--steps 60] [--model small]

Not a test. FLOPs are counted with torch.utils.flop_counter on the very batches that were timed
(forward + backward), so padding that length bucketing leaves in is counted as work done.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from torch.utils.flop_counter import FlopCounterMode

from journeyformer.data.batch import MODEL_INPUTS
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

    def step(batch) -> torch.Tensor:
        out = module.net(*(batch.inputs[k] for k in MODEL_INPUTS))
        loss = module.weighted(module.losses(batch, out))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    module.train()
    for batch in batches[:5]:  # warm-up
        step(batch)
    timed = batches[5:]
    start = time.perf_counter()
    for batch in timed:
        step(batch)
    seconds = time.perf_counter() - start
    events = sum(int(b.lengths.sum()) for b in timed)
    slots = sum(b.lengths.numel() * b.categorical.shape[1] for b in timed)
    flops = 0
    for batch in timed:
        with FlopCounterMode(display=False) as counter:
            out = module.net(*(batch.inputs[k] for k in MODEL_INPUTS))
            module.weighted(module.losses(batch, out)).backward()
        flops += counter.get_total_flops()
        opt.zero_grad(set_to_none=True)
    peak = matmul_flops()
    achieved = flops / seconds
    n_params = sum(p.numel() for p in module.net.parameters())
    print(f"model={args.model} params={n_params:,} threads={torch.get_num_threads()} batches={len(timed)} batch_size={data['batch_size']}")
    print(f"events (real tokens)   : {events:,}  padding share {1 - events / slots:.1%}")
    print(f"train throughput       : {events / seconds:,.0f} events/s  ({len(timed) / seconds:.1f} steps/s)")
    print(f"model FLOP/s (fwd+bwd) : {achieved / 1e9:.2f} GFLOP/s")
    print(f"fp32 matmul FLOP/s     : {peak / 1e9:.2f} GFLOP/s (1024x1024 @ 1024x1024)")
    print(f"share of matmul peak   : {achieved / peak:.1%}")


if __name__ == "__main__":
    main()
