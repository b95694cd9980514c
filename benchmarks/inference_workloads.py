"""The workloads and measures of ``bench_inference.py``: synthetic events and an untrained
checkpoint, the torch eager paths (padded, length-bucketed), the real-event FLOP count, the fp32
matmul reference and the predictor's peak RSS in a child process. Not a test."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from journeyformer.data.events.load import load_events
from journeyformer.data.events.schema import EventSchema
from journeyformer.data.features.batch import MODEL_INPUTS, length_batches, make_batch
from journeyformer.data.features.sequences import Sequences
from journeyformer.data.preprocessing import Preprocessing
from journeyformer.inference.loop import prediction_frame
from journeyformer.model.config import ModelConfig
from journeyformer.model.network import JourneyTransformer
from journeyformer.synthetic.config import SyntheticConfig
from journeyformer.synthetic.journeys import generate_journeys
from journeyformer.training.module import JourneyModule

ROOT = Path(__file__).resolve().parents[1]

def make_events(path: Path, n_customers: int, seed: int, n_files: int = 1) -> int:
    """Synthetic events (the package's generator) as one file or a directory of n_files."""
    events = generate_journeys(SyntheticConfig(n_customers=n_customers, seed=seed)).events
    if n_files == 1:
        events.write_parquet(path)
    else:
        path.mkdir(parents=True, exist_ok=True)
        ids = events.get_column("customer_id")
        for i in range(n_files):
            events.filter(ids % n_files == i).write_parquet(path / f"part-{i:03d}.parquet")
    return events.height


def make_checkpoint(events_path: Path, out: Path) -> Path:
    """An untrained default model whose vocabularies come from the benchmark events."""
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        cfg = compose("train", overrides=["paths.output_dir=/tmp"])
    data_cfg = OmegaConf.to_container(cfg.data, resolve=True)
    labels_cfg = OmegaConf.to_container(cfg.labels, resolve=True)
    sizes = OmegaConf.to_container(cfg.model, resolve=True)
    events = load_events(events_path, EventSchema.from_config(data_cfg))
    pre = Preprocessing.fit(events, data_cfg, labels_cfg, source=str(events_path))
    torch.manual_seed(0)
    module = JourneyModule(ModelConfig.from_data(sizes, pre).to_dict(), pre.to_dict())
    torch.save({"hyper_parameters": dict(module.hparams), "state_dict": module.state_dict()}, out)
    return out


def real_event_flops(cfg: ModelConfig, lengths: np.ndarray, last_position_only: bool) -> float:
    """FLOPs (2 x multiply-adds) the network executes on real events only (no padding).

    Per event: numeric projection, per block qkv + output projection + MLP; per sequence of
    length L and block: causal attention scores and weighted sum over L(L+1)/2 query-key
    pairs; per customer: context projection and the task heads. Embedding lookups, norms and
    softmax are not counted (memory-bound, few FLOPs). With ``last_position_only`` (the
    exported graph) the last block projects keys and values for every event but runs its
    query, attention, output projection and MLP for the last event only.
    """
    d, f, ff = cfg.d_model, cfg.n_numeric, cfg.d_ff
    lengths = lengths.astype(np.float64)
    tokens, customers = lengths.sum(), len(lengths)
    pairs = (lengths * (lengths + 1) / 2).sum()
    block_per_token = 2 * d * 3 * d + 2 * d * d + 2 * 2 * d * ff
    full_blocks = cfg.n_layers - 1 if last_position_only else cfg.n_layers
    flops = 2 * f * d * tokens + full_blocks * (block_per_token * tokens + 2 * 2 * d * pairs)
    if last_position_only:
        kv = 2 * d * 2 * d * tokens
        one_query = (2 * d * d + 2 * d * d + 2 * 2 * d * ff) * customers + 2 * 2 * d * tokens
        flops += kv + one_query
    outs = {"next_action": cfg.n_actions, "churn": 1, "stage": cfg.n_stages, "value": 3}
    per_customer = 2 * cfg.n_context * d + sum(2 * d * d + 2 * d * outs[t] for t in cfg.tasks)
    return float(flops + per_customer * customers)


def matmul_gflops(threads: int, n: int = 2048, repeats: int = 10) -> float:
    """fp32 GEMM throughput of this machine with ``threads`` threads (torch.mm, MKL)."""
    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(2):
        torch.mm(a, b)
    t = time.perf_counter()
    for _ in range(repeats):
        torch.mm(a, b)
    return 2 * n**3 * repeats / (time.perf_counter() - t) / 1e9


def torch_batches(seqs: Sequences, batch_size: int, padded: bool, max_len: int) -> list[Any]:
    if padded:  # input order, everything padded to max_len
        order = np.arange(len(seqs))
        return [
            make_batch(seqs, order[i : i + batch_size], max_len=max_len, with_targets=False)
            for i in range(0, len(seqs), batch_size)
        ]
    order = np.argsort(seqs.lengths, kind="stable")
    return length_batches(seqs, batch_size)


@torch.no_grad()
def torch_run(net: JourneyTransformer, batches: list[Any], n: int) -> dict[str, np.ndarray]:
    out = {name: None for name in net.output_names}
    for batch in batches:
        inputs = (torch.from_numpy(batch.inputs[k]) for k in MODEL_INPUTS)
        for name, value in net.predict(*inputs).items():
            if out[name] is None:
                out[name] = np.empty((n, *value.shape[1:]), dtype=np.float32)
            out[name][batch.index] = value.numpy()
    return out


def torch_end_to_end(
    net, bundle, events_path: Path, batch_size: int, padded: bool, out: Path
) -> float:
    """Events file -> predictions Parquet with torch eager; returns seconds."""
    t = time.perf_counter()
    events = load_events(events_path, bundle.schema())
    as_of = events.get_column("timestamp").max()
    pre = bundle.preprocessing
    seqs = pre.sequences(events, as_of, with_labels=False, active_only=False)
    outputs = torch_run(net, torch_batches(seqs, batch_size, padded, pre.max_len), len(seqs))
    prediction_frame(seqs, outputs, bundle, as_of).write_parquet(out)
    return time.perf_counter() - t


def median_of(fn, repeats: int) -> float:
    return statistics.median(fn() for _ in range(repeats))


def child_peak_rss(bundle: Path, events: Path, out: Path, chunk_customers: int) -> dict[str, Any]:
    """Run the predictor in a child process; its peak RSS (GB), plus its summary.

    The peak is the child's own VmHWM (high-water mark of its address space after exec).
    ``getrusage``/``wait4``'s ru_maxrss is reported too but is not used: Linux carries the
    forked pre-exec image's RSS into it, i.e. this (large) benchmark process's RSS.
    """
    code = (
        "import json, sys\n"
        "from journeyformer.inference.job import predict_events\n"
        f"r = predict_events({str(bundle)!r}, {str(events)!r}, {str(out)!r}, "
        f"chunk_customers={chunk_customers}, progress=False)\n"
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0].split()[1]\n"
        "print(json.dumps({'seconds': r.seconds, 'customers': r.n_customers, 'events': r.n_events, "
        "'torch_imported': 'torch' in sys.modules, 'vmhwm_kib': int(hwm)}))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    stdout = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise RuntimeError(f"predictor child failed with exit code {proc.returncode}")
    result = json.loads(stdout.strip().splitlines()[-1])
    result["peak_rss_gb"] = result.pop("vmhwm_kib") * 1024 / 1e9
    result["ru_maxrss_gb"] = usage.ru_maxrss * 1024 / 1e9  # KiB on Linux; see the docstring
    return result


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t

