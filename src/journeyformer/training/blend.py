"""The shipped model per head: the Transformer, gradient boosting on the same inputs, or a blend
(docs/training.md).

On real customer logs gradient boosting on per-customer aggregates is the bar, and a
practitioner who gets a worse ranking from the deep model than from the LightGBM beside it uses
the LightGBM. So each head's output is chosen on validation data among the network, a LightGBM
fitted on the network's own inputs, and ``w * network + (1 - w) * booster`` for ``w`` in
:data:`BLEND_GRID`. The booster reads only what the exported graph receives
(:func:`model_features`), so the bundle computes it inside the same ONNX graph
(:mod:`journeyformer.export.blend`). The booster early-stops on the validation samples too, so
its validation score is slightly optimistic: ties go to the network.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from journeyformer.data.features.sequences import Sequences
from journeyformer.tasks import registry
from journeyformer.tasks.boosting import BoostingBaseline

log = logging.getLogger(__name__)

BLEND_GRID = (1.0, 0.75, 0.5, 0.25, 0.0)  # weight of the network; the first wins ties
BOOST_DIR = "boost"


def model_features(seqs: Sequences) -> np.ndarray:
    """(N, S + 3) float32: the ``context`` input, then the last kept event's action and channel
    vocabulary ids and ``stage_now`` (the categorical columns LightGBM treats as categories,
    last, as :func:`journeyformer.tasks.boosting` expects)."""
    last = seqs.offsets[1:] - 1  # every sample has at least one event
    cat = seqs.categorical[last].astype(np.float32)  # (N, C): action, channel, extras
    channel = cat[:, 1] if cat.shape[1] > 1 else np.zeros(len(seqs), np.float32)
    return np.column_stack(
        [seqs.context.astype(np.float32), cat[:, 0], channel, seqs.stage_now.astype(np.float32)]
    ).astype(np.float32)


def model_inputs(seqs: Sequences) -> Sequences:
    return replace(seqs, aggregates=model_features(seqs))


@dataclass
class Blend:
    """Fitted boosters and the network's weight per task (1.0: the network alone).

    ``scores``: task -> {weight: validation headline}, what the choice was made on."""

    boosting: BoostingBaseline
    weights: dict[str, float]
    scores: dict[str, dict[str, float]] = field(default_factory=dict)

    def describe(self) -> str:
        return "per-head choice on validation (network weight; 1 = Transformer alone, 0 = LightGBM alone): " + ", ".join(
            f"{t} {w:g}" for t, w in self.weights.items()
        )

    def booster_outputs(self, seqs: Sequences) -> dict[str, np.ndarray]:
        """Output name -> the booster's prediction of that output, for the blended tasks."""
        preds = self.boosting.predict(model_inputs(seqs))
        return {registry.get(t).metric_output: preds[t] for t in self.blended}

    @property
    def blended(self) -> list[str]:
        return [t for t, w in self.weights.items() if w < 1.0]

    def apply(self, outputs: Mapping[str, np.ndarray], seqs: Sequences) -> dict[str, np.ndarray]:
        """The shipped outputs: ``outputs`` (the network's on ``seqs``) with each blended
        task's output replaced by the blend."""
        out = dict(outputs)
        boosted = self.booster_outputs(seqs)
        for task in self.blended:
            name, w = registry.get(task).metric_output, self.weights[task]
            out[name] = (w * out[name] + (1 - w) * boosted[name]).astype(out[name].dtype)
        return out

    def report(self) -> dict[str, Any]:
        return {
            "weights": dict(self.weights),
            "validation_headline": self.scores,
            "rounds": dict(self.boosting.rounds),
        }

    # ---- plain files: LightGBM text models, named by the run manifest -------------------------
    def save(self, run_dir: Path) -> dict[str, Any]:
        """Write each used booster's text model under ``run_dir/boost/``; the manifest entry."""
        from journeyformer.io import atomic_write_text

        (run_dir / BOOST_DIR).mkdir(exist_ok=True)
        files = {}
        for task in self.blended:
            rel = f"{BOOST_DIR}/{task}.txt"
            booster = self.boosting.boosters[task]
            atomic_write_text(run_dir / rel, booster.model_to_string(num_iteration=self.boosting.rounds[task]))
            files[task] = rel
        classes = {t: [int(c) for c in self.boosting.classes[t]] for t in self.blended if t in self.boosting.classes}
        widths = {t: self.boosting.n_classes[t] for t in classes}
        return {"weights": dict(self.weights), "files": files, "classes": classes, "n_classes": widths}

    @classmethod
    def load(cls, run_dir: Path, entry: Mapping[str, Any]) -> Blend:
        import lightgbm as lgb

        boosters = {t: lgb.Booster(model_str=(run_dir / f).read_text()) for t, f in entry["files"].items()}
        boosting = BoostingBaseline(
            boosters=boosters,
            classes={t: np.asarray(c) for t, c in entry.get("classes", {}).items()},
            n_classes={t: int(n) for t, n in entry.get("n_classes", {}).items()},
            rounds={t: b.current_iteration() for t, b in boosters.items()},
        )
        return cls(boosting, {t: float(w) for t, w in entry["weights"].items()})


def fit_boosters(
    train: Sequences, val: Sequences, tasks: Sequence[str], n_classes: Mapping[str, int], seed: int = 0
) -> BoostingBaseline | None:
    """The blend's boosters: LightGBM on the model's inputs of ``train``, early-stopped on
    ``val``; None without lightgbm. Needs no network, so the train job fits them in a
    process beside training (:mod:`journeyformer.jobs.train`)."""
    from journeyformer.tasks import boosting

    if not boosting.available():
        log.warning("lightgbm is not installed: every head is the network alone (no blend)")
        return None
    return BoostingBaseline.fit(
        model_inputs(train), model_inputs(val), [registry.get(t) for t in tasks], n_classes, seed=seed
    )


def choose_blend(
    fitted: BoostingBaseline, tasks: Sequence[str], val_outputs: Mapping[str, np.ndarray], val: Sequences
) -> Blend:
    """Each of ``tasks``' network weight, picked on ``val`` (``val_outputs``: the calibrated
    network's outputs there) by the task's headline metric; ties go to the network."""
    assert val.labels is not None
    blend = Blend(fitted, {t: 1.0 for t in tasks})
    preds = fitted.predict(model_inputs(val))
    for name in tasks:
        task = registry.get(name)
        if name not in preds:  # no booster (nothing to learn): the network alone
            continue
        y, net = val.labels[name], val_outputs[task.metric_output]
        keep = task.label_mask(y) if hasattr(task, "label_mask") else np.ones(len(y), bool)
        scores = {w: task.headline_score((w * net + (1 - w) * preds[name])[keep], y[keep]) for w in BLEND_GRID}
        best = max(BLEND_GRID, key=lambda w: (round(scores[w], 6), w))  # ties: more network
        blend.weights[name] = best
        blend.scores[name] = {f"{w:g}": s for w, s in scores.items()}
    return blend
