"""One full attention block of the default model, onnxruntime's CPU kernels against torch's.

Not a test. The fused graph (``model.fused.onnx``, :mod:`journeyformer.export.fuse`) runs each
full block's attention, from the packed QKV projection to the merged heads, as one
``com.microsoft.Attention`` node. This times that node and the two other onnxruntime contrib
kernels that can express the same causal, right-padded attention (``MultiHeadAttention`` with
``unidirectional=1`` and a key padding mask of lengths; ``GroupQueryAttention`` with as many
key/value heads as query heads and ``seqlens_k = lengths - 1``) against torch's
``scaled_dot_product_attention(is_causal=True)`` after the same projection, on the default
model's shapes (d_model 64, 4 heads of 16) and length-sorted batches of 64 sequences whose
lengths follow the default data (geometric, mean about 33, at most max_len 64).

Each variant's output is checked against a NumPy reference on every real position first.

    python benchmarks/bench_attention.py [--threads 1] [--sequences 3000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import onnxruntime as ort
import torch
from onnx import TensorProto, helper, numpy_helper

from journeyformer.machine import cpu_line

D_MODEL, HEADS, MAX_LEN, BATCH = 64, 4, 64, 64
MS = "com.microsoft"


def session(nodes, inputs, weights: dict[str, np.ndarray], threads: int) -> ort.InferenceSession:
    inits = [numpy_helper.from_array(v, k) for k, v in weights.items()]
    out = helper.make_tensor_value_info("out", TensorProto.FLOAT, None)
    graph = helper.make_graph(nodes, "attention", inputs, [out], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid(MS, 1)])
    model.ir_version = 8
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def reference(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Causal multi-head attention in NumPy (float64), (B, T, D) -> (B, T, D)."""
    n, t, d = x.shape
    q, k, v = np.split(x.astype(np.float64) @ w + b, 3, axis=2)
    heads = [a.reshape(n, t, HEADS, d // HEADS).transpose(0, 2, 1, 3) for a in (q, k, v)]
    s = heads[0] @ heads[1].transpose(0, 1, 3, 2) / np.sqrt(d // HEADS)
    s = np.where(np.tril(np.ones((t, t), bool)), s, -np.inf)
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    return (p @ heads[2]).transpose(0, 2, 1, 3).reshape(n, t, d)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--sequences", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=7, help="best of this many passes")
    args = parser.parse_args()
    print(cpu_line())
    rng = np.random.default_rng(0)
    w = (rng.standard_normal((D_MODEL, 3 * D_MODEL)) * 0.1).astype(np.float32)
    b = (rng.standard_normal(3 * D_MODEL) * 0.1).astype(np.float32)
    lengths = np.sort(np.clip(rng.geometric(1 / 33, args.sequences), 1, MAX_LEN)).astype(np.int32)
    batches = []
    for i in range(0, len(lengths), BATCH):
        lens = lengths[i : i + BATCH]
        x = rng.standard_normal((len(lens), int(lens.max()), D_MODEL)).astype(np.float32)
        x[np.arange(x.shape[1])[None, :] >= lens[:, None]] = 0.0
        batches.append((x, lens))
    print(
        f"{args.sequences} sequences, mean length {lengths.mean():.1f}, {len(batches)} length-sorted "
        f"batches of {BATCH}; d_model {D_MODEL}, {HEADS} heads; {args.threads} thread(s)"
    )

    x_in = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", "T", D_MODEL])
    lens_in = helper.make_tensor_value_info("lengths", TensorProto.INT32, ["B"])
    weights = {"w": w, "b": b}
    project = [helper.make_node("MatMul", ["x", "w"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["qkv"])]
    split = helper.make_node("Split", ["qkv"], ["q", "k", "v"], axis=2, num_outputs=3)
    attention = session(
        [helper.make_node("Attention", ["x", "w", "b", "lengths"], ["out"], domain=MS, num_heads=HEADS, unidirectional=1)],
        [x_in, lens_in], weights, args.threads,
    )  # fmt: skip
    mha = session(
        [*project, split, helper.make_node(
            "MultiHeadAttention", ["q", "k", "v", "", "lengths"], ["out"], domain=MS, num_heads=HEADS, unidirectional=1
        )],
        [x_in, lens_in], weights, args.threads,
    )  # fmt: skip
    gqa = session(
        [*project, helper.make_node(
            "GroupQueryAttention", ["qkv", "", "", "", "", "seqlens_k", "total"], ["out", "present_k", "present_v"],
            domain=MS, num_heads=HEADS, kv_num_heads=HEADS,
        )],
        [x_in, helper.make_tensor_value_info("seqlens_k", TensorProto.INT32, ["B"]),
         helper.make_tensor_value_info("total", TensorProto.INT32, [])],
        weights, args.threads,
    )  # fmt: skip
    torch.set_num_threads(args.threads)
    wt, bt = torch.from_numpy(w), torch.from_numpy(b)

    @torch.no_grad()
    def sdpa(x: np.ndarray, lens: np.ndarray) -> np.ndarray:
        xt = torch.from_numpy(x)
        n, t, _ = xt.shape
        q, k, v = (h.view(n, t, HEADS, -1).transpose(1, 2) for h in (xt @ wt + bt).split(D_MODEL, 2))
        out = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        return out.transpose(1, 2).reshape(n, t, D_MODEL).numpy()

    variants = {
        "onnxruntime Attention (the fused graph's)": lambda x, lens: attention.run(None, {"x": x, "lengths": lens})[0],
        "onnxruntime MultiHeadAttention": lambda x, lens: mha.run(None, {"x": x, "lengths": lens})[0],
        "onnxruntime GroupQueryAttention": lambda x, lens: gqa.run(
            None, {"x": x, "seqlens_k": lens - 1, "total": np.array(x.shape[1], np.int32)}
        )[0],
        "torch scaled_dot_product_attention": sdpa,
    }
    x, lens = batches[-1]
    ref = reference(x, w, b)
    real = np.arange(x.shape[1])[None, :] < lens[:, None]
    seconds = {}
    for name, fn in variants.items():
        err = float(np.abs(fn(x, lens) - ref)[real].max())
        if err > 1e-4:
            raise SystemExit(f"{name}: max error {err:.2e} against the reference on real positions")
    for _ in range(args.repeats):  # interleaved: load changes hit every variant alike
        for name, fn in variants.items():
            start = time.perf_counter()
            for x, lens in batches:
                fn(x, lens)
            seconds.setdefault(name, []).append(time.perf_counter() - start)
    base = min(seconds["torch scaled_dot_product_attention"])
    print("\n| attention block (QKV projection + causal attention) | best s | vs torch |")
    print("|---|---|---|")
    for name, times in seconds.items():
        print(f"| {name} | {min(times):.4f} | {base / min(times):.2f}x |")


if __name__ == "__main__":
    main()
