"""The task registry's contract: every registered task is present in every layer, its
baselines (LightGBM included) fit, and its learnability rule runs."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
import torch
from support import model_inputs
from support_tasks import PurchaseInHorizon

from journeyformer.data.events.load import load_events
from journeyformer.data.events.schema import EventSchema
from journeyformer.data.features.definitions import FeatureConfig
from journeyformer.data.features.sequences import build_sequences
from journeyformer.data.features.vocab import Vocabularies
from journeyformer.data.labels.lifecycle import STAGES, LabelConfig
from journeyformer.data.preprocessing import Preprocessing
from journeyformer.evaluation import plots
from journeyformer.evaluation.protocol import BaselineData, Population, score
from journeyformer.evaluation.render import render_text
from journeyformer.evaluation.segments import mean_pairs, segment_table
from journeyformer.export.onnx import io_spec
from journeyformer.inference.bundle import Bundle
from journeyformer.inference.loop import prediction_frame, prediction_schema
from journeyformer.jobs.train import learnable_tasks
from journeyformer.model.config import ModelConfig
from journeyformer.model.network import JourneyTransformer
from journeyformer.model.runner import predict_sequences
from journeyformer.tasks import registry
from journeyformer.tasks.base import Task
from journeyformer.tasks.boosting import NAME as BOOSTING
from journeyformer.tasks.boosting import Boosted, available
from journeyformer.tasks.registry import Baselines
from journeyformer.training.module import JourneyModule

CUTOFF = datetime(2025, 9, 1, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def labelled(events_path: Path):
    """Labelled sequences of the session's synthetic events, with the toy task registered."""
    with registry.registered(PurchaseInHorizon()):
        events = load_events(events_path, EventSchema.from_config({"extra_categorical": ["device"]}))
        features = FeatureConfig(max_len=16, categorical=("action", "channel", "device"))
        vocabs = Vocabularies.build(events, features.categorical)
        seqs = build_sequences(
            events, CUTOFF, vocabs, features, LabelConfig(), labelers=registry.labelers()
        )
    return seqs, vocabs, features


def check_contract(task: Task, seqs, vocabs, features) -> None:
    """Fails naming the layer where ``task`` is missing."""
    assert task.name in registry.TASKS, "registry"
    # data: a label for every sample
    assert task.name in seqs.labels and len(seqs.labels[task.name]) == len(seqs), "label"
    # model: a head of the declared size, named outputs, a finite loss
    cfg = ModelConfig(
        categorical_sizes=tuple(len(vocabs[c]) for c in features.categorical),
        n_numeric=len(features.numeric_names),
        n_context=6,
        max_len=features.max_len,
        d_model=16,
        n_heads=2,
        d_ff=16,
        n_layers=1,
        tasks={task.name: 1.0},
    )
    net = JourneyTransformer(cfg).eval()
    assert net.heads[task.name][-1].out_features == task.head_size(cfg), "head"
    outputs = predict_sequences(net, seqs.take(np.arange(64)))
    declared = [o.name for o in task.outputs(cfg)]
    assert list(outputs) == [*declared, "embedding"], "named outputs"
    assert [o["name"] for o in io_spec(net)["outputs"]] == [*declared, "embedding"], "ONNX I/O spec"
    raw = net(*model_inputs(cfg, b=2, t=3)).raw
    loss = task.loss(raw[task.name], torch.from_numpy(seqs.labels[task.name][:2]))
    assert loss.ndim == 0 and torch.isfinite(loss), "loss"
    # training: logged validation metrics use the task's own score
    module = JourneyModule(cfg.to_dict(), {})
    assert set(module.val_metrics) == {task.name}, "logged metrics"
    # baselines and learnability: every baseline fits (LightGBM with the task's objective)
    base = check_baselines(task, seqs, vocabs)
    check_learnability(task, seqs)
    # evaluation: model and every baseline scored with the same metric names, headline included
    sample = seqs.take(np.arange(64))
    population = Population(sample, "sample", "the first 64", {"status": "complete", "cutoff": "2025-01-01", "ends": "2025-01-31"})
    result = score(population, outputs, base, BaselineData(seqs, None, "all samples"), [task.name])
    assert task.headline in result["model"][task.name], "headline metric"
    for name, scores in result["baselines"][task.name].items():
        assert set(scores) <= set(result["model"][task.name]), f"baseline {name}"
    assert task.name in render_text(result), "printed table"
    # the headline alone (what the bootstrap resamples) is the headline of the full score
    y = sample.labels[task.name]
    for pred in (outputs[task.metric_output], *base.predict(sample)[task.name].values()):
        np.testing.assert_equal(task.headline_score(pred, y), task.score(pred, y)[task.headline])
    # predictions: declared columns, filled from the outputs
    pre = Preprocessing(EventSchema.from_config({"extra_categorical": ["device"]}), features, LabelConfig(), vocabs)
    bundle = Bundle(Path("."), {"tasks": {task.name: 1.0}, "preprocessing": pre.to_dict()})
    assert bundle.stages == STAGES
    frame = prediction_frame(sample, outputs, bundle, CUTOFF)
    assert set(task.columns(bundle.context())) <= set(frame.columns), "prediction columns"
    assert frame.schema == prediction_schema(bundle, sample.customer_id.dtype), "prediction schema"
    # segments and explanations: a mean output is one of the task's outputs, on the label's scale
    if task.mean_output:
        assert task.mean_output in declared, "mean output"
        table = segment_table(["a"] * len(sample), ["a"], mean_pairs(outputs, sample.labels))
        assert table[f"predicted_{task.name}"].item() == pytest.approx(float(np.mean(outputs[task.mean_output])))
        assert table[f"actual_{task.name}"].item() == pytest.approx(float(np.mean(sample.labels[task.name])))
    # report: every plot it asks for exists and draws
    for plot in task.plots(sample.labels[task.name], outputs, base.predict(sample)[task.name], bundle.context()):
        png = getattr(plots, plot.kind)(**plot.args)
        assert png[:4] == b"\x89PNG", f"plot {plot.file}"


def check_baselines(task: Task, seqs, vocabs) -> Baselines:
    """Every baseline the task lists is fitted on small labelled data (LightGBM early-stopped on
    a validation half), and LightGBM is among them: a task without a boosting objective fails
    here, not after a training run."""
    assert any(isinstance(b, Boosted) for b in task.baselines()), "a LightGBM baseline (Boosted)"
    half = np.arange(len(seqs)) % 2 == 0
    train, val = seqs.take(np.flatnonzero(half)), seqs.take(np.flatnonzero(~half))
    base = Baselines.fit(train, 30.0, len(vocabs["action"]), [task.name], val=val)
    fitted = [b.name for b in base.fitted[task.name]]
    expected = [b.name for b in task.baselines() if available() or b.name != BOOSTING]
    assert fitted == expected, "every baseline fits"
    for b in base.fitted[task.name]:
        assert len(b.predict(val)) == len(val), f"baseline {b.name} predicts"
    return base


def check_learnability(task: Task, seqs) -> None:
    """The task's label mask and learnability rule run on its labels: the synthetic labels are
    learnable, an all-zero label is not, and the training job switches that head off."""
    y = seqs.labels[task.name]
    mask = task.label_mask(y)
    assert mask.dtype == bool and mask.shape == y.shape[:1] and mask.any(), "label mask"  # one per sample
    assert task.unlearnable_reason(y) is None, "learnable labels"
    assert isinstance(task.unlearnable_reason(np.zeros_like(y)), str), "unlearnable labels"
    assert learnable_tasks({task.name: 1.0}, seqs) == {task.name: 1.0}, "learnable_tasks keeps"
    zeroed = replace(seqs, labels={**seqs.labels, task.name: np.zeros_like(y)})
    assert learnable_tasks({task.name: 1.0}, zeroed) == {task.name: 0.0}, "learnable_tasks drops"


# next_item needs an item column, which these events lack: its contract runs on the catalogue
# world in tests/unit/test_next_item.py (test_next_item_is_in_every_layer); uplift needs
# exposures: its contract runs on the campaigns world in tests/unit/test_uplift_head.py.
@pytest.mark.parametrize("name", [n for n in registry.TASKS if n not in ("next_item", "uplift")])
def test_every_registered_task_is_in_every_layer(name, labelled):
    check_contract(registry.get(name), *labelled)


class Unboosted(PurchaseInHorizon):
    """The toy task with no boosting objective declared."""

    boosting = None


def test_a_task_without_a_boosting_objective_fails_the_contract(labelled):
    seqs, vocabs, _ = labelled
    with registry.registered(Unboosted()) as task:
        with pytest.raises(NotImplementedError, match="'purchase' declares no boosting objective"):
            check_baselines(task, seqs, vocabs)


def test_a_toy_fifth_task_is_in_every_layer(labelled):
    with registry.registered(PurchaseInHorizon()) as task:
        check_contract(task, *labelled)
        seqs = labelled[0]
        y = seqs.labels["purchase"]
        assert 0 < y.mean() < 1
        # a purchase in the horizon means value > 0 when purchases carry an amount
        assert (seqs.labels["value"][y == 0] == 0).all()


def test_registry_order_and_clear_errors():
    assert list(registry.TASKS) == ["next_action", "churn", "stage", "value", "next_item", "uplift"]
    with pytest.raises(KeyError, match="registered tasks"):
        registry.get("ltv")
    with pytest.raises(ValueError, match="already registered"):
        registry.register(registry.get("churn"))
