"""The whole network: embeddings -> encoder -> customer representation -> heads."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from journeyformer.model.config import ModelConfig
from journeyformer.model.embeddings import EventEmbedding
from journeyformer.model.encoder import JourneyEncoder
from journeyformer.model.heads import build_heads, ziln_expected

# Names of the inference outputs, in order; the ONNX graph uses the same names.
OUTPUTS = (
    "next_action_probs",
    "churn_probability",
    "stage_probs",
    "spend_probability",
    "expected_value",
    "embedding",
)


class JourneyTransformer(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = EventEmbedding(cfg)
        self.encoder = JourneyEncoder(cfg)
        # The customer summary (stage now + whole-history features) joins at the top, so the
        # representation knows what was truncated away by max_len.
        self.stage_now = nn.Embedding(cfg.n_stages, cfg.d_model)
        self.context = nn.Linear(cfg.n_context, cfg.d_model)
        self.ln_rep = nn.LayerNorm(cfg.d_model)
        self.heads = build_heads(cfg)
        # Temperature scaling of the churn probability, fitted on validation data after
        # training (evaluation.calibration); 1.0 = uncalibrated. A buffer, so it travels in the
        # checkpoint and into the ONNX graph.
        self.register_buffer("churn_temperature", torch.ones(()))
        self.apply(self._init)

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=0.02)

    def encode(
        self, categorical: Tensor, numeric: Tensor, lengths: Tensor, stage_now: Tensor, context: Tensor
    ) -> tuple[Tensor, Tensor]:
        """-> hidden states (B, T, D) and the customer representation (B, D)."""
        hidden = self.encoder(self.embed(categorical, numeric, lengths), lengths)  # (B, T, D)
        last = (lengths - 1).clamp(min=0)[:, None, None].expand(-1, 1, hidden.shape[-1])
        at_last = hidden.gather(1, last).squeeze(1)  # (B, D): state after the most recent event
        rep = self.ln_rep(at_last + self.stage_now(stage_now) + self.context(context))
        return hidden, rep

    def forward(
        self, categorical: Tensor, numeric: Tensor, lengths: Tensor, stage_now: Tensor, context: Tensor
    ) -> dict[str, Tensor]:
        """Raw outputs for training: per-task logits/parameters plus hidden states.

        Returns ``hidden`` (B, T, D), ``embedding`` (B, D) and, for enabled tasks,
        ``next_action`` (B, A) logits, ``churn`` (B,) logit, ``stage`` (B, S) logits,
        ``value`` (B, 3) zero-inflated log-normal parameters.
        """
        hidden, rep = self.encode(categorical, numeric, lengths, stage_now, context)
        out = {"hidden": hidden, "embedding": rep}
        for task, head in self.heads.items():
            y = head(rep)
            out[task] = y.squeeze(-1) if task == "churn" else y
        return out

    def next_event_logits(self, hidden: Tensor) -> Tensor:
        """(B, T, D) -> (B, T, A): every position predicts the action of the following event."""
        return self.heads["next_action"](hidden)

    @torch.no_grad()
    def predict(
        self, categorical: Tensor, numeric: Tensor, lengths: Tensor, stage_now: Tensor, context: Tensor
    ) -> tuple[Tensor, ...]:
        """Inference outputs in OUTPUTS order (probabilities, expected spend, embedding).

        Disabled tasks give NaN-free zeros of the right shape, so the output contract is fixed.
        """
        out = self.forward(categorical, numeric, lengths, stage_now, context)
        b = lengths.shape[0]
        zeros = lengths.new_zeros((b,), dtype=torch.float32)
        actions = out["next_action"].softmax(-1) if "next_action" in out else zeros[:, None].expand(b, self.cfg.n_actions)
        churn = torch.sigmoid(out["churn"] / self.churn_temperature) if "churn" in out else zeros
        stage = out["stage"].softmax(-1) if "stage" in out else zeros[:, None].expand(b, self.cfg.n_stages)
        spend_p, expected = ziln_expected(out["value"]) if "value" in out else (zeros, zeros)
        return actions, churn, stage, spend_p, expected, out["embedding"]


class InferenceWrapper(nn.Module):
    """forward() = JourneyTransformer.predict, for export and scoring."""

    def __init__(self, net: JourneyTransformer) -> None:
        super().__init__()
        self.net = net

    def forward(
        self, categorical: Tensor, numeric: Tensor, lengths: Tensor, stage_now: Tensor, context: Tensor
    ) -> tuple[Tensor, ...]:
        return self.net.predict(categorical, numeric, lengths, stage_now, context)
