"""The whole network: embeddings -> encoder -> customer representation -> one head per task."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from journeyformer.model.config import ModelConfig
from journeyformer.model.embeddings import EventEmbedding
from journeyformer.model.encoder import JourneyEncoder
from journeyformer.model.heads import build_heads
from journeyformer.tasks import registry
from journeyformer.tasks.base import EMBEDDING, Output

EMBEDDING_OUTPUT = "embedding"


@dataclass
class NetworkOutput:
    """What :meth:`JourneyTransformer.forward` returns.

    Attributes:
        hidden: (B, T, D) hidden states, or (B, 1, D) at the last event with ``last_only``.
        embedding: (B, D) customer representation.
        raw: task -> (B, head_size) raw head output (logits or distribution parameters).
    """

    hidden: Tensor
    embedding: Tensor
    raw: dict[str, Tensor]


class JourneyTransformer(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.tasks = registry.enabled(cfg.tasks)
        self.embed = EventEmbedding(cfg)
        self.encoder = JourneyEncoder(cfg)
        # The customer summary (stage now + whole-history features) joins at the top, so the
        # representation knows what was truncated away by max_len.
        self.stage_now = nn.Embedding(cfg.n_stages, cfg.d_model)
        # Standardisation of the context input with training-set mean and scale (set by
        # set_context_stats before training; zeros/ones leave it unchanged). Buffers, so they
        # travel in the checkpoint and into the ONNX graph.
        self.register_buffer("context_mean", torch.zeros(cfg.n_context))
        self.register_buffer("context_scale", torch.ones(cfg.n_context))
        # Piecewise-linear encoding of each context column (``context_bins`` > 0; Gorishniy et
        # al. 2022, "On Embeddings for Numerical Features in Tabular Deep Learning"): one input
        # per training-quantile bin, 0 below it, 1 above it, linear inside, so the MLP gets
        # the thresholds a tree would split on. Edges are buffers set by set_context_stats.
        self.context_bins = cfg.context_bins
        n_in = cfg.n_context * (cfg.context_bins + 1 if cfg.context_bins else 1)
        if cfg.context_bins:
            edges = torch.linspace(0, 1, cfg.context_bins + 1).repeat(cfg.n_context, 1)
            self.register_buffer("context_edges", edges)  # (S, bins + 1)
        if cfg.context_layers == 1:
            self.context: nn.Module = nn.Linear(n_in, cfg.d_model)
        else:  # the aggregate context has interactions a single Linear cannot express
            self.context = nn.Sequential(
                nn.Linear(n_in, 2 * cfg.d_model), nn.GELU(), nn.Linear(2 * cfg.d_model, cfg.d_model)
            )
        self.ln_rep = nn.LayerNorm(cfg.d_model)
        self.heads = build_heads(cfg)
        self.item_task = next((t for t in self.tasks if t.ranks_items), None)
        self.next_event_task = next((t for t in self.tasks if t.next_event), None)
        if self.item_task is not None:
            # Item scores: q . e_item + b_item, e_item tied to the item input embedding (the
            # last categorical column). log_q: log sampling probability of each item for the
            # sampled softmax (set by set_item_stats; padding and <unk> are never drawn).
            self.item_bias = nn.Parameter(torch.zeros(cfg.n_items))
            # Scores are a learned scale times the cosine of q and e_item (normalised softmax):
            # at the 0.02-std initialisation plain dot products are ~0 and learn slowly.
            self.item_scale = nn.Parameter(torch.tensor(math.log(10.0)))
            log_q = torch.full((cfg.n_items,), -math.log(cfg.n_items - 2))
            log_q[:2] = float("-inf")
            self.register_buffer("item_log_q", log_q)
        # Temperature scaling of each calibrated task's probability (``<task>_temperature``),
        # fitted on validation data after training; 1.0 = uncalibrated. Buffers, so they travel
        # in the checkpoint and into the ONNX graph.
        for task in self.tasks:
            if task.calibrated:
                self.register_buffer(f"{task.name}_temperature", torch.ones(()))
            # A scaled output (the expected value) is multiplied by ``<task>_scale``, fitted on
            # validation data so that its sum matches the actual sum there; 1.0 = unscaled.
            if task.scaled_output:
                self.register_buffer(f"{task.name}_scale", torch.ones(()))
            # A decision rule (stage): logits shifted per class and towards the stage now,
            # fitted for the headline metric on validation data; zeros = the plain argmax.
            if task.decision_rule:
                self.register_buffer(f"{task.name}_offset", torch.zeros(cfg.n_stages))
                self.register_buffer(f"{task.name}_carry", torch.zeros(()))
        self.apply(self._init)

    @torch.no_grad()
    def set_context_stats(self, context: np.ndarray) -> None:
        """Standardise the context input with the mean and scale of ``context`` (N, S), the
        training samples' context (constant columns keep scale 1)."""
        mean, std = context.mean(0), context.std(0)
        self.context_mean.copy_(torch.from_numpy(mean.astype(np.float32)))
        self.context_scale.copy_(torch.from_numpy(np.where(std > 1e-6, std, 1.0).astype(np.float32)))
        if self.context_bins:
            z = (context - mean) / np.where(std > 1e-6, std, 1.0)
            q = np.quantile(z, np.linspace(0, 1, self.context_bins + 1), axis=0).T  # (S, bins + 1)
            # Repeated quantiles (counts that are mostly 0) leave empty bins: nudge the edges
            # apart so every bin has a positive width.
            q = np.maximum.accumulate(q + 1e-4 * np.arange(q.shape[1]), axis=1)
            self.context_edges.copy_(torch.from_numpy(q.astype(np.float32)))

    @torch.no_grad()
    def set_item_stats(self, item_ids: np.ndarray) -> None:
        """Sampled-softmax proposal from the training item ids (E,) (history events and
        targets): frequency^0.75, add-one smoothed, never padding or ``<unk>``."""
        if self.item_task is None:
            return
        ids = np.asarray(item_ids, dtype=np.int64)
        counts = np.bincount(ids[(ids >= 2) & (ids < self.cfg.n_items)], minlength=self.cfg.n_items)
        w = (counts + 1.0) ** 0.75
        w[:2] = 0.0
        q = w / w.sum()
        with np.errstate(divide="ignore"):
            self.item_log_q.copy_(torch.from_numpy(np.log(q).astype(np.float32)))

    @property
    def item_table(self) -> Tensor:
        """(V, D) unit-length item embeddings (of the item column's input embedding) times
        the learned scale: scores are q_unit @ item_table.T + bias."""
        table = torch.nn.functional.normalize(self.embed.categorical[-1].weight, dim=-1)
        return table * self.item_scale.exp()

    def item_loss(self, q: Tensor, target: Tensor, seen: Tensor | None = None) -> Tensor:
        """The next-item loss of queries q (B, D) against targets (B, K) (tasks/next_item.py);
        ``seen`` (B, T) ids: out of each row's softmax (:meth:`seen_items`)."""
        assert self.item_task is not None
        q = torch.nn.functional.normalize(q, dim=-1)
        # Full softmax up to item_full_softmax_max items, unless the (rows, V) logits would
        # pass 2**25 floats (the every-position auxiliary loss): then sampled.
        full = self.cfg.item_full_softmax_max if len(q) * self.cfg.n_items <= 2**25 else 0
        if seen is not None and self.cfg.n_items > full and seen.numel() * self.cfg.item_negatives > 2**25:
            seen = None  # sampled, and the (rows, T, negatives) test would not fit: at such sizes a seen item is rarely drawn
        return self.item_task.item_loss(
            q, target, self.item_table, self.item_bias, self.item_log_q, full, self.cfg.item_negatives, seen,
        )  # fmt: skip

    def seen_items(self, categorical: Tensor) -> Tensor | None:
        """(B, T) item ids of the events of ``categorical`` (B, T, C) where the ranking excludes
        them (``item_exclude_seen``), else None: what the cutoff's loss leaves out of its
        softmax, as the graph leaves them out of the list (its target is never one of them)."""
        return categorical[..., -1] if self.cfg.item_exclude_seen else None

    def next_item_loss(self, hidden: Tensor, categorical: Tensor, numeric: Tensor) -> Tensor | None:
        """Auxiliary loss: every position's hidden state (B, T, D) predicts the item of the
        following event through the next_item head (SASRec's training signal, every prefix);
        None without a next item in the batch. With ``item_exclude_seen`` the target is, as
        at the cutoff, an item the customer has not had: the items up to each position leave
        its softmax and a repeat is no target."""
        assert self.item_task is not None
        items = categorical[..., -1]
        target = items[:, 1:]  # (B, T-1)
        valid = target >= 2
        prior = None
        if self.cfg.item_exclude_seen:
            t = items.shape[1]
            upto = torch.ones(t - 1, t, dtype=torch.bool, device=items.device).tril()  # row i: 0..i
            prior = items[:, None, :].masked_fill(~upto, 0)  # (B, T-1, T): padding id 0 elsewhere
            valid = valid & ~(prior == target[..., None]).any(-1)
        if not valid.any():
            return None
        state = hidden[:, :-1]
        if self.cfg.item_query_gap:
            state = state + self.embed.query_gap(numeric)
        q = self.heads[self.item_task.name](state[valid])  # (M, D)
        return self.item_loss(q, target[valid][:, None], None if prior is None else prior[valid])

    def item_outputs(self, q: Tensor, categorical: Tensor | None) -> dict[str, Tensor]:
        """Queries (B, D) -> the top k item ids (B, k) int64 and scores (B, k), best first.

        Padding and ``<unk>`` are never listed, nor (``item_exclude_seen``) the items of the
        events in ``categorical`` (B, T, C). The (B, V) scores exist only inside this call
        (and the graph): what leaves is (B, k)."""
        from journeyformer.tasks.next_item import MASKED, list_size

        q = torch.nn.functional.normalize(q, dim=-1)
        scores = q @ self.item_table.T + self.item_bias  # (B, V)
        never = torch.zeros_like(scores[:, :2]).fill_(MASKED)
        scores = torch.cat([never, scores[:, 2:]], dim=1)
        if self.cfg.item_exclude_seen and categorical is not None:
            seen = categorical[..., -1]  # (B, T): padding and <unk> ids land on masked columns
            scores = scores.scatter(1, seen, torch.full_like(seen, 0, dtype=scores.dtype) + MASKED)
        top, ids = torch.topk(scores, list_size(self.cfg), dim=1)
        return {"next_item_ids": ids, "next_item_scores": top}

    def encode_context(self, context: Tensor) -> Tensor:
        """(B, S) raw context -> (B, S) standardised, or (B, S * (bins + 1)) with the
        standardised value followed by its piecewise-linear encoding (``context_bins``)."""
        z = (context - self.context_mean) / self.context_scale  # (B, S)
        if not self.context_bins:
            return z
        lo, hi = self.context_edges[:, :-1], self.context_edges[:, 1:]  # (S, bins)
        ple = ((z[..., None] - lo) / (hi - lo)).clamp(0.0, 1.0)  # (B, S, bins)
        return torch.cat([z[..., None], ple], dim=-1).flatten(1)

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=0.02)

    def temperature(self, task: str) -> Tensor | None:
        """The temperature buffer of a calibrated task, None for the others."""
        return getattr(self, f"{task}_temperature", None)

    def forward(
        self,
        categorical: Tensor,
        numeric: Tensor,
        lengths: Tensor,
        stage_now: Tensor,
        context: Tensor,
        last_only: bool = False,
    ) -> NetworkOutput:
        """Raw outputs for training (see :class:`NetworkOutput`).

        Inputs: categorical (B, T, C) int64, numeric (B, T, F), lengths (B,) int64,
        stage_now (B,) int64, context (B, S). ``last_only`` computes the last block at the
        last real event only (every inference output reads only that position).
        """
        hidden = self.encoder(self.embed(categorical, numeric, lengths), lengths, last_only)
        if last_only:
            at_last = hidden[:, 0]  # (B, D)
        else:
            last = (lengths - 1).clamp(min=0)[:, None, None].expand(-1, 1, hidden.shape[-1])
            at_last = hidden.gather(1, last).squeeze(1)  # (B, D): state after the last event
        rep = self.ln_rep(at_last + self.stage_now(stage_now) + self.context(self.encode_context(context)))
        # The next-item head's query (model/config.py): the state alone (item_query=state) or
        # the representation, plus when the item comes (item_query_gap)
        item = self.item_task.name if self.item_task is not None else None
        query = at_last if self.cfg.item_query == "state" else rep
        if item is not None and self.cfg.item_query_gap:
            query = query + self.embed.query_gap(numeric, lengths)
        raw = {name: head(query if name == item else rep) for name, head in self.heads.items()}
        return NetworkOutput(hidden, rep, raw)

    def postprocess(self, raw: dict[str, Tensor], categorical: Tensor | None = None) -> dict[str, Tensor]:
        """task -> raw head output to output name -> probabilities/amounts (see outputs);
        ``categorical`` (B, T, C): the events whose items next items exclude."""
        out: dict[str, Tensor] = {}
        for task in self.tasks:
            if task is self.item_task:
                out |= self.item_outputs(raw[task.name], categorical)
                continue
            out |= task.postprocess(raw[task.name], self.temperature(task.name))
            if task.scaled_output:
                out[task.scaled_output] = out[task.scaled_output] * getattr(self, f"{task.name}_scale")
        return out

    def next_event_logits(self, hidden: Tensor) -> Tensor:
        """(B, T, D) -> (B, T, A): every position predicts the action of the following event
        (through the head of the task that predicts the next event)."""
        assert self.next_event_task is not None
        return self.heads[self.next_event_task.name](hidden)

    @property
    def outputs(self) -> tuple[Output, ...]:
        """The named inference outputs, the enabled tasks' in registry order then the embedding."""
        per_task = tuple(o for t in self.tasks for o in t.outputs(self.cfg))
        return (*per_task, Output(EMBEDDING_OUTPUT, (self.cfg.d_model,), EMBEDDING))

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.outputs)

    @torch.no_grad()
    def predict(
        self,
        categorical: Tensor,
        numeric: Tensor,
        lengths: Tensor,
        stage_now: Tensor,
        context: Tensor,
        last_only: bool = True,
    ) -> dict[str, Tensor]:
        """Output name -> inference output (probabilities, expected spend, embedding), in the
        order of :attr:`outputs`."""
        out = self.forward(categorical, numeric, lengths, stage_now, context, last_only)
        outputs = self.postprocess(self.decide(out.raw, stage_now), categorical)
        return {**outputs, EMBEDDING_OUTPUT: out.embedding}

    def decide(self, raw: dict[str, Tensor], stage_now: Tensor) -> dict[str, Tensor]:
        """Raw outputs with each decision-rule task's logits shifted by its fitted offsets
        and carry-over weight (metrics/decision.py's ``apply_rule``, in the graph)."""
        raw = dict(raw)
        for task in self.tasks:
            if task.decision_rule:
                offset, carry = getattr(self, f"{task.name}_offset"), getattr(self, f"{task.name}_carry")
                now = torch.nn.functional.one_hot(stage_now, offset.shape[0]).to(offset.dtype)
                raw[task.name] = raw[task.name] + offset + carry * now  # (B, S)
        return raw


class InferenceWrapper(nn.Module):
    """forward() = :meth:`JourneyTransformer.predict` as a tuple in ``output_names`` order:
    the one place outputs are positional, because a traced graph's outputs are."""

    def __init__(self, net: JourneyTransformer, last_only: bool = True) -> None:
        super().__init__()
        self.net = net
        self.last_only = last_only

    def forward(
        self, categorical: Tensor, numeric: Tensor, lengths: Tensor, stage_now: Tensor, context: Tensor
    ) -> tuple[Tensor, ...]:
        out = self.net.predict(categorical, numeric, lengths, stage_now, context, self.last_only)
        return tuple(out[name] for name in self.net.output_names)
