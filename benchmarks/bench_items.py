"""Next items: scoring speed and memory with TopK in the graph against scores taken out of it,
and training throughput with the sampled softmax at a large catalogue.

Not a test. An untrained model of the small size (d_model 64, 2 layers; speed does not depend
on the weights) with an item column of ``--items`` items is exported twice:

  (a) the bundle's graph: scores over the catalogue and TopK inside, outputs (B, k) ids + scores
  (b) the same network returning the (B, items) scores; top k taken outside with NumPy
      (argpartition), the way a job without TopK in the graph would

and both score ``--customers`` customers of random valid sequences (lengths 1..max_len) in
batches of ``--batch-size`` with onnxruntime on ``--threads`` threads. Peak memory is the
process's VmHWM after each variant, run in its own child process. Then ``--train-items``
items: training steps (forward, sampled-softmax loss, backward, AdamW) per second on random
batches.

    python benchmarks/bench_items.py                                    # 1M x 50k, 200k training
    python benchmarks/bench_items.py --customers 20000 --items 5000     # quick look
    python benchmarks/bench_items.py --variants topk_in_graph --train-steps 0   # the bundle's graph only
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from journeyformer.export.onnx import export_onnx, random_inputs
from journeyformer.inference.session import make_session
from journeyformer.io import atomic_write_text
from journeyformer.machine import cpu_info
from journeyformer.model.config import ModelConfig
from journeyformer.model.network import JourneyTransformer


def config(n_items: int, max_len: int = 64) -> ModelConfig:
    return ModelConfig(
        categorical_sizes=(12, 6, n_items), n_numeric=7, n_context=6, max_len=max_len, d_model=64,
        n_layers=2, n_heads=4, d_ff=128, tasks={"next_item": 1.0}, n_items=n_items, item_exclude_seen=True,
    )  # fmt: skip


class FullScores(torch.nn.Module):
    """The network's query against every item: (B, items) scores, no TopK (variant b)."""

    def __init__(self, net: JourneyTransformer) -> None:
        super().__init__()
        self.net = net

    def forward(self, categorical, numeric, lengths, stage_now, context):  # noqa: ANN001, ANN201
        out = self.net(categorical, numeric, lengths, stage_now, context, last_only=True)
        q = torch.nn.functional.normalize(out.raw["next_item"], dim=-1)
        return q @ self.net.item_table.T + self.net.item_bias


def export_full(net: JourneyTransformer, path: Path) -> None:
    args = tuple(torch.from_numpy(v) for v in random_inputs(net.cfg, 3, 11).values())
    b, t = torch.export.Dim("batch"), torch.export.Dim("seq_len")
    dyn = {"categorical": {0: b, 1: t}, "numeric": {0: b, 1: t}, "lengths": {0: b}, "stage_now": {0: b}, "context": {0: b}}
    with torch.no_grad():
        prog = torch.onnx.export(FullScores(net.eval()), args, input_names=list(dyn), dynamic_shapes=dyn, dynamo=True, optimize=True)
    prog.save(str(path))


def score(path: str, variant: str, customers: int, batch: int, threads: int, k: int, out: mp.Queue) -> None:
    """Child process: score ``customers`` in batches; put customers/s and peak RSS (MiB)."""
    session = make_session(path, "cpu", threads=threads) if threads else make_session(path, "cpu")
    cfg = config(int(Path(path).stem.split("_")[-1]))
    batches = [random_inputs(cfg, batch, cfg.max_len, seed=s) for s in range(4)]
    names = [o.name for o in session.get_outputs()]
    done, start = 0, time.perf_counter()
    while done < customers:
        inputs = batches[(done // batch) % len(batches)]
        got = session.run(names, inputs)
        if variant == "outside":
            scores = got[0]
            scores[:, :2] = -np.inf
            seen = inputs["categorical"][..., -1]
            np.put_along_axis(scores, seen, -np.inf, axis=1)
            top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
            np.take_along_axis(scores, top, 1).argsort(1)
        done += batch
    seconds = time.perf_counter() - start
    out.put({"customers_per_s": done / seconds, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})


def train_throughput(n_items: int, batch: int, steps: int, negatives: int) -> dict[str, float]:
    cfg = ModelConfig(**{**config(n_items).to_dict(), "item_negatives": negatives})
    net = JourneyTransformer(cfg)
    net.set_item_stats(np.random.default_rng(0).zipf(1.2, 100_000) % (n_items - 2) + 2)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    data = [random_inputs(cfg, batch, cfg.max_len, seed=s) for s in range(4)]
    target = torch.randint(2, n_items, (batch, 1))

    def step(inputs: dict) -> None:
        out = net(*(torch.from_numpy(inputs[n]) for n in ("categorical", "numeric", "lengths", "stage_now", "context")))
        loss = net.item_loss(out.raw["next_item"], target) + net.next_item_loss(out.hidden, torch.from_numpy(inputs["categorical"]), torch.from_numpy(inputs["numeric"]))
        opt.zero_grad()
        loss.backward()
        opt.step()

    step(data[0])  # warm-up
    start = time.perf_counter()
    for s in range(steps):
        step(data[s % len(data)])
    seconds = time.perf_counter() - start
    return {"samples_per_s": steps * batch / seconds, "seconds_per_step": seconds / steps}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--items", type=int, default=50_000)
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--train-items", type=int, default=200_000)
    ap.add_argument("--train-steps", type=int, default=20)
    ap.add_argument("--train-batch", type=int, default=256)
    ap.add_argument("--negatives", type=int, default=2048)
    ap.add_argument("--variants", default="topk_in_graph,outside", help="which scoring variants, comma-separated")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    variants = [v for v in args.variants.split(",") if v]
    unknown = set(variants) - {"topk_in_graph", "outside"}
    if unknown:
        ap.error(f"--variants: unknown {sorted(unknown)}; choose from topk_in_graph, outside")
    name, flags, cores = cpu_info()
    print(f"CPU: {name}, {cores} cores, {' '.join(flags) or 'no listed extensions'}; torch {torch.__version__}; {args.threads} onnxruntime threads")
    n_items = args.items + 2  # + <pad>, <unk>
    net = JourneyTransformer(config(n_items)).eval()
    result: dict = {"cpu": name, "flags": flags, "cores": cores, "args": {k: str(v) for k, v in vars(args).items()}}
    with tempfile.TemporaryDirectory() as tmp:
        topk, full = Path(tmp) / f"topk_{n_items}.onnx", Path(tmp) / f"full_{n_items}.onnx"
        export_onnx(net, topk)
        export_full(net, full)
        ctx = mp.get_context("spawn")
        for variant, path in (("topk_in_graph", topk), ("outside", full)):
            if variant not in variants:
                continue
            q: mp.Queue = ctx.Queue()
            p = ctx.Process(target=score, args=(str(path), variant, args.customers, args.batch_size, args.threads, args.k, q))
            p.start()
            r = q.get()
            p.join()
            result[variant] = r
            print(f"{variant:>14}: {r['customers_per_s']:,.0f} customers/s, peak RSS {r['peak_rss_mib']:,.0f} MiB "
                  f"({args.customers:,} customers x {args.items:,} items, top {args.k})")  # fmt: skip
    if "topk_in_graph" in result and "outside" in result:
        a, b = result["topk_in_graph"], result["outside"]
        print(f"TopK in the graph: {a['customers_per_s'] / b['customers_per_s']:.2f}x the customers/s, "
              f"{b['peak_rss_mib'] - a['peak_rss_mib']:,.0f} MiB less peak memory")  # fmt: skip
    if args.train_steps > 0:
        torch.set_num_threads(args.threads)
        t = train_throughput(args.train_items + 2, args.train_batch, args.train_steps, args.negatives)
        result["training"] = t
        print(f"training at {args.train_items:,} items (sampled softmax, {args.negatives} negatives, every-position "
              f"auxiliary): {t['samples_per_s']:,.0f} samples/s, {t['seconds_per_step']:.2f} s/step of {args.train_batch}")  # fmt: skip
    if args.json:
        atomic_write_text(args.json, json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
