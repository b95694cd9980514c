"""The LightningModule: weighted multi-task loss, AdamW with warm-up + cosine, metrics."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from journeyformer.config import shipped
from journeyformer.data.features.batch import MODEL_INPUTS, Batch
from journeyformer.model.checkpoint import load_weights, read_checkpoint
from journeyformer.model.config import ModelConfig
from journeyformer.model.network import JourneyTransformer, NetworkOutput
from journeyformer.training.batch import to_device
from journeyformer.training.metrics import TaskScore

log = logging.getLogger(__name__)

# The optimizer settings every model size shares, read from the config that sets them
# (configs/model/_common.yaml).
DEFAULT_OPTIMIZER = shipped("model/_common.yaml")["optimizer"]


class JourneyModule(L.LightningModule):
    """Multi-task training of :class:`JourneyTransformer`.

    Args:
        model: :class:`ModelConfig` fields as plain values (sizes from the data included).
        preprocessing: :meth:`journeyformer.data.preprocessing.Preprocessing.to_dict` of the
            data the model was trained on. It travels in the checkpoint so a checkpoint alone
            can score new events.
        optimizer: AdamW settings plus ``warmup_ratio`` and ``min_lr_ratio`` of the schedule.
            Plain values rather than a ``_partial_`` so checkpoints stay plain.
    """

    def __init__(
        self,
        model: Mapping[str, Any],
        preprocessing: Mapping[str, Any],
        optimizer: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.cfg = ModelConfig(**model)
        self.net = JourneyTransformer(self.cfg)
        self.optim_cfg = {**DEFAULT_OPTIMIZER, **dict(optimizer or {})}
        # val/<task>/<metric>: each task's own score function (the reported metrics' too).
        self.val_metrics = nn.ModuleDict({t.name: TaskScore(t) for t in self.net.tasks})
        if self.cfg.next_event_weight > 0 and not self.next_event_on:
            log.info(
                "model.next_event_weight=%g: the auxiliary next-event loss is off, since it "
                "trains through the next_action head, which this model does not have",
                self.cfg.next_event_weight,
            )

    # ---- losses -------------------------------------------------------------------------
    @property
    def next_event_on(self) -> bool:
        """Whether the auxiliary next-event loss is trained (see :meth:`losses`)."""
        return self.cfg.next_event_weight > 0 and self.net.next_event_task is not None

    def losses(self, batch: Batch, out: NetworkOutput) -> dict[str, Tensor]:
        """Per-task losses (unweighted) plus ``next_event`` (auxiliary, every position).

        The auxiliary loss is deliberately tied to the next_action head: position i predicts
        the action of event i + 1 through the same head that predicts the first action after
        the cutoff from the last position, so that head learns its mapping from every prefix of
        every sequence (T - 1 more targets per sample), and the encoder gets a dense causal
        signal. Without a next_action head there is nothing to tie it to, so it is off; the
        module says so once when it is built (:attr:`next_event_on`), never silently.
        """
        assert batch.targets is not None
        losses = {
            t.name: (
                self.net.item_loss(out.raw[t.name], batch.targets[t.name], self.net.seen_items(batch.inputs["categorical"]))
                if t is self.net.item_task
                else t.loss(out.raw[t.name], batch.targets[t.name])
            )
            for t in self.net.tasks
        }
        if self.next_event_on and batch.inputs["categorical"].shape[1] > 1:
            # Position i predicts the action at i + 1; padding targets (id 0) are ignored.
            logits = self.net.next_event_logits(out.hidden[:, :-1])  # (B, T-1, A)
            target = batch.inputs["categorical"][:, 1:, 0]
            if (target != 0).any():
                losses["next_event"] = F.cross_entropy(logits.flatten(0, 1), target.flatten(), ignore_index=0)
        if self.net.item_task is not None and self.cfg.next_event_weight > 0 and batch.inputs["categorical"].shape[1] > 1:
            # Likewise for items: position i predicts the item of event i + 1 (next_item head).
            aux = self.net.next_item_loss(out.hidden, batch.inputs["categorical"], batch.inputs["numeric"])
            if aux is not None:
                losses["next_item_event"] = aux
        return losses

    def weighted(self, losses: dict[str, Tensor]) -> Tensor:
        weights = {**self.cfg.tasks, "next_event": self.cfg.next_event_weight, "next_item_event": self.cfg.next_event_weight}
        return sum(weights[k] * v for k, v in losses.items())

    # ---- steps --------------------------------------------------------------------------
    def transfer_batch_to_device(self, batch: Batch, device: torch.device, dataloader_idx: int) -> Batch:
        return to_device(batch, device)

    def _losses(self, batch: Batch, stage: str) -> tuple[NetworkOutput, Tensor]:
        """The forward pass; logs ``<stage>/loss`` and each ``<stage>/<task>/loss``."""
        out = self.net(*(batch.inputs[n] for n in MODEL_INPUTS))
        losses = self.losses(batch, out)
        loss = self.weighted(losses)
        # sync_dist (validation): under DDP each rank sees a share of the validation batches; the
        # epoch's loss (what checkpointing and early stopping watch) is the mean over every rank's.
        sync, bs = stage == "val", len(batch)
        self.log(f"{stage}/loss", loss, prog_bar=True, batch_size=bs, sync_dist=sync)
        for k, v in losses.items():
            self.log(f"{stage}/{k}/loss", v, batch_size=bs, sync_dist=sync)
        return out, loss

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        return self._losses(batch, "train")[1]

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        out, _ = self._losses(batch, "val")
        assert batch.targets is not None
        outputs = self.net.postprocess(out.raw, batch.inputs["categorical"])
        for task in self.net.tasks:
            self.val_metrics[task.name].update(outputs[task.metric_output], batch.targets[task.name])

    def on_validation_epoch_end(self) -> None:
        for task in self.net.tasks:
            metric = self.val_metrics[task.name]
            if metric.update_count:
                for name, value in metric.compute().items():
                    # compute() already gathered every rank's predictions (torchmetrics)
                    self.log(f"val/{task.name}/{name}", value, prog_bar=name == task.headline, sync_dist=True)
            metric.reset()

    # ---- optimisation -------------------------------------------------------------------
    def configure_optimizers(self) -> dict[str, Any]:
        c = self.optim_cfg
        # Decay the weight matrices of Linear layers only: not embeddings, norms or biases.
        linear = {id(m.weight) for m in self.net.modules() if isinstance(m, nn.Linear)}
        decay = [p for p in self.net.parameters() if id(p) in linear]
        no_decay = [p for p in self.net.parameters() if id(p) not in linear]
        opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": c["weight_decay"]}, {"params": no_decay, "weight_decay": 0.0}],
            lr=c["lr"],
            betas=tuple(c["betas"]),
        )
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warmup = max(1, int(c["warmup_ratio"] * total))
        floor = c["min_lr_ratio"]

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            progress = min(1.0, (step - warmup) / max(1, total - warmup))
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def load_module(path: str | Path) -> JourneyModule:
    """Rebuild a trained module from a checkpoint of plain values (``weights_only=True``)."""
    ckpt = read_checkpoint(path)
    hp = ckpt["hyper_parameters"]
    module = JourneyModule(hp["model"], hp["preprocessing"], hp.get("optimizer"))
    load_weights(module.net, ckpt["state_dict"], path)
    return module.eval()
