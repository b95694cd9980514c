"""An onnxruntime-only copy of the exported graph with each attention as one fused kernel.

``model.onnx`` is plain ONNX (any runtime reads it). Its attention is a chain of a dozen small
ops per block (split, reshape, transpose, scaled matmul, additive mask, softmax, matmul,
transpose, reshape), and the (B, H, T, T) mask is built and added in memory every call. This
module writes ``model.fused.onnx``, where

* every full block's attention, from the packed QKV projection to the merged heads, becomes one
  ``com.microsoft.Attention`` node (``unidirectional=1``: causal; ``mask_index`` = the (B,)
  lengths: keys at or after a sequence's length are padding), and
* the last block's one-query attention (``last_position_only``) becomes one
  ``com.microsoft.MultiHeadAttention`` node with the lengths as its key padding mask,

so no mask tensor is materialised and no head transposes are run. The rest of the graph is
untouched. The bundle's parity check holds the fused graph to torch exactly as the plain one;
the predictor runs whichever is faster on the machine (:mod:`journeyformer.inference.choice`).

The rewrite matches the graph :func:`journeyformer.export.onnx.export_onnx` writes for
:class:`journeyformer.model.encoder.SelfAttention`. It is all or nothing: unless every one of the
model's attention blocks is matched (a future exporter or model change can write another
pattern), no fused file is written, a warning names how many blocks matched, the export report
records it (``fused``) and the predictor runs the plain graph.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import onnx
from onnx import TensorProto, helper

log = logging.getLogger(__name__)

MS_DOMAIN = "com.microsoft"
LENGTHS_I32 = "lengths_int32"


@dataclass
class FusionCount:
    """Attention subgraphs matched: full blocks (Attention) and one-query blocks (MHA), out of
    the model's ``blocks``; the fused file is written only when every block matched."""

    blocks: int
    attention: int = 0
    one_query: int = 0

    @property
    def total(self) -> int:
        return self.attention + self.one_query

    @property
    def complete(self) -> bool:
        return self.total == self.blocks > 0

    def to_dict(self) -> dict[str, int | bool]:
        return {
            "blocks": self.blocks,
            "attention": self.attention,
            "one_query": self.one_query,
            "written": self.complete,
        }


class _Graph:
    """Producer/consumer look-ups over a graph's nodes."""

    def __init__(self, graph: onnx.GraphProto) -> None:
        self.producer = {o: n for n in graph.node for o in n.output}
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for n in graph.node:
            for i in n.input:
                self.consumers.setdefault(i, []).append(n)

    def chain(self, value: str, ops: tuple[str, ...], up: bool = False) -> list[onnx.NodeProto] | None:
        """Nodes ``ops`` from ``value`` on, each the only consumer of the previous one's first
        output (``up``: the producer of its first input); None where one is another op."""
        nodes = []
        for op in ops:
            if up:
                node = self.producer.get(value)
            else:
                users = self.consumers.get(value, [])
                node = users[0] if len(users) == 1 else None
            if node is None or node.op_type != op:
                return None
            nodes.append(node)
            value = (node.input if up else node.output)[0]
        return nodes


_V_PATH = ("Reshape", "Transpose", "MatMul", "Transpose", "Reshape")


def _full_block(g: _Graph, split: onnx.NodeProto, n_heads: int) -> tuple[list[str], onnx.NodeProto] | None:
    """QKV MatMul -> Add(bias) -> Split(3) ... -> merged heads, as one Attention node."""
    qkv = g.chain(split.input[0], ("Add", "MatMul"), up=True)
    v_path = g.chain(split.output[2], _V_PATH)
    if qkv is None or v_path is None:
        return None
    add, matmul = qkv
    x, weight = matmul.input
    merged = v_path[-1].output[0]  # (B, T, D), the input of the output projection
    node = helper.make_node(
        "Attention",
        [x, weight, add.input[1], LENGTHS_I32],
        [merged],
        name=f"fused_attention_{merged}",
        domain=MS_DOMAIN,
        num_heads=n_heads,
        unidirectional=1,
    )
    return [matmul.name, add.name, split.name, v_path[-1].name], node


def _one_query_block(
    g: _Graph, split: onnx.NodeProto, n_heads: int
) -> tuple[list[str], onnx.NodeProto] | None:
    """K/V MatMul -> Add -> Split(2) and a separate one-position Q projection -> one MHA node."""
    v_path = g.chain(split.output[1], _V_PATH)
    # MatMul(probs, v) <- Softmax <- Add(mask) <- MatMul(q, k) <- Mul(scale) <- heads of q
    q_path = v_path and g.chain(v_path[2].input[0], ("Softmax", "Add", "MatMul", "Mul", "Transpose", "Reshape"), up=True)
    if not q_path or g.chain(split.input[0], ("Add",), up=True) is None:
        return None
    query = q_path[-1].input[0]  # (B, 1, D), bias already added
    merged = v_path[-1].output[0]
    node = helper.make_node(
        "MultiHeadAttention",
        [query, split.output[0], split.output[1], "", LENGTHS_I32],
        [merged],
        name=f"fused_one_query_attention_{merged}",
        domain=MS_DOMAIN,
        num_heads=n_heads,
    )
    return [v_path[-1].name], node


def fuse_attention(source: str | Path, target: str | Path, n_heads: int, n_blocks: int) -> FusionCount:
    """Write ``source`` with fused attention to ``target``; returns what was matched.

    ``n_heads``, ``n_blocks``: the model's heads per block and attention blocks. Nothing is
    written (and a warning logged) unless all ``n_blocks`` matched: a partly fused graph would
    mean the pattern has drifted from the exporter's.
    """
    model = onnx.load(str(source))
    graph = model.graph
    g = _Graph(graph)
    replace: dict[str, onnx.NodeProto] = {}
    drop: set[str] = set()
    count = FusionCount(blocks=n_blocks)
    for node in graph.node:
        if node.op_type != "Split" or len(node.output) not in (2, 3):
            continue
        full = len(node.output) == 3
        found = (_full_block if full else _one_query_block)(g, node, n_heads)
        if found is None:
            continue
        removed, fused = found
        replace[removed[0]] = fused
        drop.update(removed[1:])
        count.attention += full
        count.one_query += not full
    if not count.complete:
        log.warning(
            "%s: fused attention matched %d of the model's %d attention blocks; no fused graph "
            "written, the predictor runs the plain graph (export/fuse.py's pattern no longer "
            "matches the exporter's attention)",
            source,
            count.total,
            n_blocks,
        )
        return count
    cast = helper.make_node("Cast", ["lengths"], [LENGTHS_I32], name="lengths_to_int32", to=TensorProto.INT32)
    nodes = [cast, *(replace.get(n.name, n) for n in graph.node if n.name not in drop)]
    nodes = _live(nodes, {o.name for o in graph.output})
    del graph.node[:]
    graph.node.extend(_topological(nodes, {i.name for i in graph.input} | {i.name for i in graph.initializer}))
    used = {i for n in graph.node for i in n.input}
    kept = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    if not any(o.domain == MS_DOMAIN for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(MS_DOMAIN, 1))
    onnx.save(model, str(target))
    return count


def _live(nodes: list[onnx.NodeProto], outputs: set[str]) -> list[onnx.NodeProto]:
    """``nodes`` without those whose outputs nothing uses (iterated to a fixed point)."""
    while True:
        used = {i for n in nodes for i in n.input} | outputs
        kept = [n for n in nodes if any(o in used for o in n.output)]
        if len(kept) == len(nodes):
            return nodes
        nodes = kept


def _topological(nodes: list[onnx.NodeProto], known: set[str]) -> list[onnx.NodeProto]:
    """Nodes ordered so each comes after the producers of its inputs (a fused node sits where
    its last node was, which may be before a producer of one of its inputs)."""
    known = set(known) | {""}
    ordered, pending = [], list(nodes)
    while pending:
        ready = [n for n in pending if all(i in known for i in n.input)]
        if not ready:
            raise RuntimeError("fused graph has a cycle or an undefined input")
        for n in ready:
            ordered.append(n)
            known.update(n.output)
        pending = [n for n in pending if n not in ready]
    return ordered
