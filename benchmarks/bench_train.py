"""Training throughput of the default model: events (tokens) per second and model FLOP/s as a
share of the fp32 matmul FLOP/s measured on the same machine in the same run.

    .venv/bin/python benchmarks/bench_train.py [--customers 20000] [--steps 60] [--model small]
        [--variants fp32,masked,bf16]

Not a test. FLOPs are counted with torch.utils.flop_counter on the very batches that were timed
(forward + backward), so padding that length bucketing leaves in is counted as work done. The
matmul reference is measured before and after the timed passes (the best of both counts), so a
load that changes during the run does not flatter the share.

Variants, timed interleaved on the same batches (one optimizer step per batch):

* ``fp32``: the training step as ``make train`` runs it (fp32, the model's dropout).
* ``bf16``: the same under CPU bf16 autocast.
* ``no_attn_dropout``: fp32 with the attention-probability dropout off (the other dropouts
  stay). Measures what ``model.attention_dropout`` costs; the same as fp32 when it is 0 (the
  default since configs/model/_common.yaml set it so).
* ``torch_dropout``: fp32 with torch's own CPU dropout mask instead of the model's
  (:mod:`journeyformer.model.dropout`): what the fast mask saves.
* ``compiled``: fp32 with ``torch.compile(net)`` (compile time excluded; needs a C++ compiler).
* ``masked``: fp32 with the explicit (B, 1, T, T) padding mask in attention, as training ran
  before it used the causal flag alone (:meth:`journeyformer.model.encoder.JourneyEncoder.forward`;
  same states at every real position).
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

from journeyformer.data.features.batch import MODEL_INPUTS
from journeyformer.machine import cpu_line
from journeyformer.model.config import ModelConfig
from journeyformer.model.dropout import Dropout
from journeyformer.model.encoder import SelfAttention
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


def shape_gemm_flops(m: int, d: int, ff: int, repeats: int = 20) -> tuple[float, list[str]]:
    """fp32 GEMM FLOP/s at the encoder's own shapes: ``m`` (B x T) rows, K and N of d_model
    and d_ff, forward and both backward products (dX = dY W^T, dW = X^T dY) of the QKV,
    output and two MLP projections. Returns the FLOP-weighted rate of them all and one line
    per projection: the ceiling the model's matmuls meet, beside the 1024^3 one."""
    total_flops = total_s = 0.0
    lines = []
    for name, (k, n) in {"qkv": (d, 3 * d), "out": (d, d), "mlp up": (d, ff), "mlp down": (ff, d)}.items():
        x, w, dy = torch.randn(m, k), torch.randn(k, n), torch.randn(m, n)
        rates = []
        for a, b in ((x, w), (dy, w.T), (x.T, dy)):
            for _ in range(3):
                a @ b
            start = time.perf_counter()
            for _ in range(repeats):
                a @ b
            seconds = time.perf_counter() - start
            total_flops, total_s = total_flops + 2 * m * k * n * repeats, total_s + seconds
            rates.append(2 * m * k * n * repeats / seconds / 1e9)
        lines.append(f"{name} ({m}x{k} @ {k}x{n}): fwd {rates[0]:.1f}, dX {rates[1]:.1f}, dW {rates[2]:.1f} GFLOP/s")
    return total_flops / total_s, lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=20000)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--model", default="small")
    parser.add_argument(
        "--variants",
        default="fp32,masked,bf16",
        help="comma-separated: fp32, bf16 (CPU autocast), no_attn_dropout, torch_dropout, compiled, masked",
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per variant")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
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

    attention = [m for m in module.net.modules() if isinstance(m, SelfAttention)]
    variants = args.variants.split(",")
    unknown = set(variants) - {"fp32", "bf16", "no_attn_dropout", "torch_dropout", "compiled", "masked"}
    if unknown:
        parser.error(f"--variants: unknown {sorted(unknown)}")
    compiled = torch.compile(module.net) if "compiled" in variants else None

    def step(batch, variant: str) -> torch.Tensor:
        net = compiled if variant == "compiled" else module.net
        for m in attention:
            m.dropout = 0.0 if variant == "no_attn_dropout" else model_cfg.attention_dropout
        # the encoder's own flag only (its blocks' dropout stays on): the eval-path mask
        module.net.encoder.training = variant != "masked"
        Dropout.fast = variant != "torch_dropout"
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=variant == "bf16"):
            out = net(*(batch.inputs[k] for k in MODEL_INPUTS))
            loss = module.weighted(module.losses(batch, out))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    module.train()
    load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    peak_before = max(matmul_flops() for _ in range(3))
    timed = batches[5:]
    seconds: dict[str, list[float]] = {v: [] for v in variants}
    for v in variants:  # warm-up (and compilation)
        for batch in batches[:5]:
            step(batch, v)
    for _ in range(args.repeats):  # interleaved, so load changes hit every variant alike
        for v in variants:
            start = time.perf_counter()
            for batch in timed:
                step(batch, v)
            seconds[v].append(time.perf_counter() - start)
    for m in attention:
        m.dropout = model_cfg.attention_dropout
    module.net.encoder.training = True
    Dropout.fast = True
    events = sum(int(b.inputs["lengths"].sum()) for b in timed)
    slots = sum(b.inputs["lengths"].numel() * b.inputs["categorical"].shape[1] for b in timed)
    flops = 0
    for batch in timed:
        with FlopCounterMode(display=False) as counter:
            out = module.net(*(batch.inputs[k] for k in MODEL_INPUTS))
            module.weighted(module.losses(batch, out)).backward()
        flops += counter.get_total_flops()
        opt.zero_grad(set_to_none=True)
    peak_after = max(matmul_flops() for _ in range(3))
    peak = max(peak_before, peak_after)
    rows = round(slots / len(timed))  # (B x T) rows of a mean timed batch
    at_shapes, shape_lines = shape_gemm_flops(rows, model_cfg.d_model, model_cfg.d_ff)
    n_params = sum(p.numel() for p in module.net.parameters())
    print(cpu_line())
    print(f"load average: before {load_before}, after {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"model={args.model} params={n_params:,} threads={torch.get_num_threads()} batches={len(timed)} batch_size={data['batch_size']}")
    print(f"events (real tokens)   : {events:,}  padding share {1 - events / slots:.1%}")
    print(
        f"fp32 matmul FLOP/s     : {peak / 1e9:.2f} GFLOP/s (1024x1024 @ 1024x1024, best of 3 before "
        f"({peak_before / 1e9:.2f}) and after ({peak_after / 1e9:.2f}) the timed passes)"
    )
    print(
        f"fp32 matmul at the model's shapes: {at_shapes / 1e9:.2f} GFLOP/s "
        f"({at_shapes / peak:.0%} of the 1024^3 figure; FLOP-weighted over fwd, dX, dW of):"
    )
    for line in shape_lines:
        print(f"    {line}")
    print(f"model FLOPs fwd+bwd    : {flops / 1e9:.2f} GFLOP per pass of {len(timed)} batches")
    print(
        f"| variant | median s | events/s | steps/s | GFLOP/s | share of fp32 matmul | share at the "
        f"model's shapes | vs {variants[0]} |"
    )
    print("|---|---|---|---|---|---|---|---|")
    base = statistics.median(seconds[variants[0]])
    for v, runs in seconds.items():
        s = statistics.median(runs)
        print(
            f"| {v} | {s:.2f} | {events / s:,.0f} | {len(timed) / s:.1f} | {flops / s / 1e9:.2f} "
            f"| {flops / s / peak:.1%} | {flops / s / at_shapes:.1%} | {base / s:.2f}x |"
        )


if __name__ == "__main__":
    main()
