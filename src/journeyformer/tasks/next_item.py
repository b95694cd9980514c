"""Next items over the catalogue: the item (or the basket of items) the customer has next.

On only with an item column (``data.columns.item``). The head turns the customer
representation into a query vector q (B, D); an item's score is q . e_item + b_item, with
e_item the item's input embedding (tied: one table) and b_item a learned bias. Training:
full softmax up to ``model.item_full_softmax_max`` items; above it, sampled softmax over
``model.item_negatives`` shared negatives drawn from the training item frequency^0.75, with
the log-Q correction (each negative's logit minus the log of S times its sampling
probability, so the normaliser is an importance-sampled estimate of the full one) and
accidental hits removed. Inference (in the graph): scores over the whole catalogue, padding, ``<unk>``
and (``exclude_seen``) the items of the kept events masked, then TopK: the graph returns
(B, k) ids and scores, never a (B, catalogue) matrix.

Labels (:meth:`NextItem.label`): (N, K) int64 item ids padded with IGNORE_INDEX; K = 1 for
``labels.item_target: next`` (the first catalogue item after the cutoff), ``basket_size``
for ``basket`` (the distinct catalogue items in the horizon, in time order). With
``exclude_seen`` an item of the customer's history is never a target.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from journeyformer.data.features.vocab import PAD_ID
from journeyformer.data.labels.lifecycle import IGNORE_INDEX, LabelWindow
from journeyformer.metrics.ranking import basket_recall_at_k, hit_rate_at_k, mrr, ndcg_at_k
from journeyformer.tasks.base import (
    RANKED_IDS,
    RANKED_SCORES,
    Arrays,
    Baseline,
    Output,
    Sizes,
    Task,
    TaskContext,
    lists,
)
from journeyformer.tasks.item_baselines import ItemRanker, generators

if TYPE_CHECKING:
    from torch import Tensor

MASKED = -1.0e9  # score of an item that may not be listed (finite: parity compares it)


def list_size(sizes: Any) -> int:
    """k of the graph's TopK: ``item_top_k`` capped at the catalogue (ids 2..n_items-1)."""
    return max(1, min(int(sizes.item_top_k), int(sizes.n_items) - 2))


class NextItem(Task):
    """See the module docstring. Headline: NDCG@10 of the next item (full ranking)."""

    name = "next_item"
    default_weight = 1.0
    metrics = {
        "hr@10": lambda r, y: hit_rate_at_k(r, y, 10),
        "ndcg@10": lambda r, y: ndcg_at_k(r, y, 10),
        "mrr": mrr,
        "recall@20": lambda r, y: basket_recall_at_k(r, y, 20),
    }
    headline = "ndcg@10"
    metric_output = "next_item_ids"
    boosting = {"objective": "lambdarank", "metric": "ndcg", "eval_at": [10]}
    ranks_items = True

    # ---- data ---------------------------------------------------------------------------
    def label(self, window: LabelWindow) -> np.ndarray:
        cfg = window.cfg
        n = len(window)
        width = 1 if cfg.item_target == "next" else cfg.basket_size
        out = np.full((n, width), IGNORE_INDEX, dtype=np.int64)
        if window.vocabs is None or "item" not in window.vocabs or "item" not in window.events.columns:
            return out
        ev = window.events
        vocab = window.vocabs["item"]
        ids = (
            ev.select(pl.when(pl.col("item").is_null()).then(PAD_ID).otherwise(vocab.encode("item")))
            .to_series()
            .to_numpy()
            .astype(np.int64)
        )
        counts = ids >= 2
        if cfg.item_actions is not None:
            counts &= ev.select(pl.col("action").is_in(list(cfg.item_actions))).to_series().to_numpy()
        cid = ev.get_column("customer_id").to_numpy()
        first = np.ones(len(cid), dtype=bool)
        first[1:] = cid[1:] != cid[:-1]
        run_start = np.maximum.accumulate(np.where(first, np.arange(len(cid)), 0))
        exclude = cfg.exclude_seen
        for i, (s, e) in enumerate(zip(window.start, window.end, strict=True)):
            if e <= s:
                continue
            cand = ids[s:e][counts[s:e]]
            if not len(cand):
                continue
            _, at = np.unique(cand, return_index=True)
            cand = cand[np.sort(at)]  # distinct, in time order
            if exclude and s > 0:
                seen = ids[run_start[s - 1] : s]
                cand = cand[~np.isin(cand, seen)]
            cand = cand[:width]
            out[i, : len(cand)] = cand
        return out

    def label_mask(self, y: np.ndarray) -> np.ndarray:
        """Samples with no catalogue item in the horizon have no label."""
        y = np.asarray(y)
        return y.reshape(len(y), -1)[:, 0] >= 2

    def unlearnable_reason(self, y: np.ndarray) -> str | None:
        y = np.asarray(y)
        targets = y[self.label_mask(y)].reshape(-1)
        targets = targets[targets >= 2]
        if not len(targets):
            return "no training sample has a catalogue item in its horizon"
        if len(np.unique(targets)) < 2:
            return f"every training target is the same item {np.unique(targets).tolist()}"
        return None

    # ---- model --------------------------------------------------------------------------
    def head_size(self, sizes: Sizes) -> int:
        return sizes.d_model  # the query vector; scores are its dot products with the items

    def loss(self, raw: Tensor, target: Tensor) -> Tensor:
        raise NotImplementedError("next_item's loss needs the item table: JourneyTransformer.item_loss")

    def item_loss(
        self,
        q: Tensor,
        target: Tensor,
        weight: Tensor,
        bias: Tensor,
        log_q: Tensor,
        full_max: int,
        n_negatives: int,
        seen: Tensor | None = None,
    ) -> Tensor:
        """Mean cross-entropy of every target item of every labelled sample.

        q (B, D) queries, target (B, K) ids (IGNORE_INDEX padding), weight (V, D) item
        embeddings, bias (V,), log_q (V,) log sampling probabilities (-inf for padding and
        ``<unk>``). Full softmax when V <= ``full_max``, else sampled softmax with log-Q
        correction over ``n_negatives`` shared negatives. ``seen`` (B, T) ids: items out of
        each row's softmax (the ranking serves them masked), a target never.
        """
        import torch

        target = target.reshape(len(target), -1)
        valid = target >= 2
        if not valid.any():
            return q.sum() * 0.0
        safe = torch.where(valid, target, torch.full_like(target, 2))  # padding -> any real item
        v = weight.shape[0]
        if v <= full_max:
            logits = q @ weight.T + bias  # (B, V)
            hide = torch.isinf(log_q).expand_as(logits)
            if seen is not None:
                hide = hide | torch.zeros_like(hide).scatter(1, seen, True).scatter(1, torch.where(valid, target, 0), False)
            logits = logits.masked_fill(hide, float("-inf"))
            logp = logits.log_softmax(-1).gather(1, safe)  # (B, K)
            return -torch.where(valid, logp, 0.0).sum() / valid.sum()
        # log Z = log sum_i exp(s_i) estimated by importance sampling: the positive exactly,
        # plus each drawn negative weighted by 1 / (S q_j) (the log-Q correction).
        neg = torch.multinomial(log_q.exp(), n_negatives, replacement=True)  # (S,)
        pos = (q[:, None, :] * weight[safe]).sum(-1) + bias[safe]  # (B, K)
        negs = q @ weight[neg].T + bias[neg] - log_q[neg] - math.log(n_negatives)  # (B, S)
        hit = (target[:, :, None] == neg[None, None, :]).any(1)  # (B, S): accidental hits
        if seen is not None:
            hit = hit | (seen[:, :, None] == neg[None, None, :]).any(1)
        negs = negs.masked_fill(hit, float("-inf"))
        logz = torch.logaddexp(pos, torch.logsumexp(negs, -1, keepdim=True))  # (B, K)
        return -torch.where(valid, pos - logz, 0.0).sum() / valid.sum()

    def outputs(self, sizes: Sizes) -> tuple[Output, ...]:
        k = list_size(sizes)
        return (
            Output("next_item_ids", (k,), RANKED_IDS, "int64"),
            Output("next_item_scores", (k,), RANKED_SCORES),
        )

    def postprocess(self, raw: Tensor, temperature: Tensor | None) -> dict[str, Tensor]:
        raise NotImplementedError("next_item's outputs need the item table: JourneyTransformer.item_outputs")

    # ---- evaluation ---------------------------------------------------------------------
    def baselines(self) -> tuple[Baseline, ...]:
        return (*generators(), ItemRanker(self))

    def columns(self, ctx: TaskContext) -> dict[str, pl.DataType]:
        return {"next_items": pl.List(pl.String), "next_item_scores": pl.List(pl.Float32)}

    def column_values(self, outputs: Arrays, ctx: TaskContext) -> dict[str, Any]:
        """The user's item ids, best first; masked entries (a catalogue smaller than k after
        the seen items) are left out of each row's list."""
        items = np.asarray(ctx.items, dtype=object)
        ids = np.asarray(outputs["next_item_ids"]).astype(np.int64)
        scores = np.asarray(outputs["next_item_scores"], dtype=np.float32)
        keep = (scores > MASKED / 2) & (ids >= 2) & (ids < len(items))
        if keep.all():  # the usual case: fixed-length lists
            return {
                "next_items": lists(items[ids].astype(str), pl.String),
                "next_item_scores": lists(scores, pl.Float32),
            }
        names = [items[r[k]].tolist() for r, k in zip(ids, keep, strict=True)]
        vals = [s[k].tolist() for s, k in zip(scores, keep, strict=True)]
        return {
            "next_items": pl.Series(names, dtype=pl.List(pl.String)),
            "next_item_scores": pl.Series(vals, dtype=pl.List(pl.Float32)),
        }
