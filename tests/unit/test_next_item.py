"""The next-item task without training: the item column, labels, metrics, the loss at 200,000
items, the in-graph TopK, the baselines and bad input."""

from __future__ import annotations

import logging
from datetime import datetime, timezone

import numpy as np
import polars as pl
import pytest
import torch

from journeyformer.data.events.load import load_events
from journeyformer.data.events.schema import EventSchema
from journeyformer.data.features.definitions import FeatureConfig
from journeyformer.data.features.sequences import build_sequences
from journeyformer.data.features.vocab import Vocabularies
from journeyformer.data.labels.lifecycle import LabelConfig
from journeyformer.data.preprocessing import item_vocab
from journeyformer.errors import ConfigError, EventDataError
from journeyformer.metrics import ranking
from journeyformer.model.config import ModelConfig
from journeyformer.model.network import JourneyTransformer
from journeyformer.synthetic.catalogue import CatalogueWorld
from journeyformer.tasks import registry
from journeyformer.tasks.base import BaselineContext
from journeyformer.tasks.item_baselines import (
    GlobalPopularity,
    ItemCooccurrence,
    ItemTransitions,
    RepeatItems,
    item_ids,
)
from journeyformer.tasks.next_item import NextItem

CUT = datetime(2025, 3, 1, tzinfo=timezone.utc)
ITEM_SCHEMA = EventSchema(columns={"item": "sku"})


def _events(tmp_path, sku: list) -> pl.DataFrame:
    """Customer 1: A, B before the cutoff, then B, C, D; customer 2: A, then an event
    without an item."""
    frame = pl.DataFrame(
        {
            "customer_id": [1, 1, 1, 1, 1, 2, 2],
            "timestamp": ["2025-02-01", "2025-02-10", "2025-03-02", "2025-03-03", "2025-03-04", "2025-02-05", "2025-03-05"],
            "channel": ["web"] * 7,
            "action": ["view"] * 7,
            "amount": [0.0] * 7,
            "sku": sku,
        }
    )
    path = tmp_path / "events.csv"
    frame.write_csv(path)
    return load_events(path, ITEM_SCHEMA)


def _labels(events: pl.DataFrame, **settings) -> np.ndarray:
    features = FeatureConfig(max_len=8, categorical=("action", "channel", "item"))
    vocabs = Vocabularies.build(events, ("action", "channel"))
    vocabs["item"] = item_vocab(events, 1, ITEM_SCHEMA, "test")
    seqs = build_sequences(
        events, CUT, vocabs, features, LabelConfig(**settings), labelers=registry.labelers(["next_item"])
    )
    tokens = np.asarray(vocabs["item"].tokens, dtype=object)
    y = seqs.labels["next_item"]
    return np.where(y >= 0, tokens[np.maximum(y, 0)], None)


def test_next_item_and_basket_targets_with_exclude_seen(tmp_path):
    events = _events(tmp_path, ["A", "B", "B", "C", "D", "A", None])
    # next: the first item not seen before (default for next), or the first item at all
    assert _labels(events)[:, 0].tolist() == ["C", None]
    assert _labels(events, item_exclude_seen=False)[:, 0].tolist() == ["B", None]
    # basket: every distinct item in the horizon (default: repeats count), or only new ones
    basket = _labels(events, item_target="basket", basket_size=4)
    assert basket[0].tolist() == ["B", "C", "D", None] and basket[1].tolist() == [None] * 4
    new = _labels(events, item_target="basket", basket_size=4, item_exclude_seen=True)
    assert new[0].tolist() == ["C", "D", None, None]


def test_integer_ids_null_items_and_bad_columns(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        events = _events(tmp_path, [10, 11, 11, 12, 13, 10, None])
    assert events["item"].dtype == pl.String and events["item"].null_count() == 1
    assert "1 of 7 events have no item" in caplog.text
    assert _labels(events)[:, 0].tolist() == ["12", None]
    path = tmp_path / "events.csv"
    with pytest.raises(EventDataError, match=r"missing column\(s\) 'product'.*data.columns.item=null"):
        load_events(path, EventSchema(columns={"item": "product"}))
    pl.read_csv(path).with_columns(pl.col("sku").cast(pl.Float64)).write_csv(tmp_path / "f.csv")
    with pytest.raises(EventDataError, match=r"'sku' \(item\) has type Float64"):
        load_events(tmp_path / "f.csv", ITEM_SCHEMA)
    with pytest.raises(ConfigError, match="item_target"):
        LabelConfig(item_target="session")


def test_item_vocabulary_min_count_and_one_item_catalogue(tmp_path, caplog):
    events = _events(tmp_path, ["A", "B", "B", "C", "B", "A", None])
    vocab = item_vocab(events, 2, ITEM_SCHEMA, "test")
    assert vocab.tokens == ("<pad>", "<unk>", "B", "A")
    with caplog.at_level(logging.WARNING):
        assert item_vocab(events, 3, ITEM_SCHEMA, "test").tokens == ("<pad>", "<unk>", "B")
    assert "catalogue has one item" in caplog.text
    with pytest.raises(EventDataError, match="no item seen 4\\+ times.*data.item_min_count"):
        item_vocab(events, 4, ITEM_SCHEMA, "test")


def test_ranking_metrics_by_hand():
    ranked = np.array([[5, 3, 7], [2, 4, 6], [9, 8, 2]])
    y = np.array([[3, 7], [6, -100], [-100, -100]])
    assert ranking.hit_rate_at_k(ranked, y, 1) == 0.0
    assert ranking.hit_rate_at_k(ranked, y, 3) == 1.0
    assert ranking.ndcg_at_k(ranked, y, 3) == pytest.approx((1 / np.log2(3) + 1 / np.log2(4)) / 2)
    assert ranking.mrr(ranked, y) == pytest.approx((1 / 2 + 1 / 3) / 2)
    assert ranking.basket_recall_at_k(ranked, y, 2) == pytest.approx((1 / 2 + 0) / 2)
    assert ranking.coverage_at_k(ranked, 10, 1) == pytest.approx(3 / 10)
    ids = ranking.top_k(np.array([[9.0, 9.0, 1.0, 3.0, 2.0]]), 2, np.array([[0, 0, 0, 1, 0]], bool))
    assert ids.tolist() == [[4, 2]]  # padding, <unk> and the excluded id never listed


def _net(n_items: int, exclude: bool = True, **kw) -> JourneyTransformer:
    cfg = ModelConfig(
        categorical_sizes=(6, 4, n_items), n_numeric=7, n_context=6, max_len=8, d_model=16,
        n_heads=2, d_ff=16, n_layers=1, tasks={"next_item": 1.0}, n_items=n_items,
        item_exclude_seen=exclude, **kw,
    )  # fmt: skip
    return JourneyTransformer(cfg)


def test_the_head_is_off_without_an_item_column():
    cfg = ModelConfig(categorical_sizes=(6, 4), n_numeric=7, n_context=6, max_len=8)
    assert "next_item" not in cfg.tasks and "churn" in cfg.tasks
    assert "next_item" not in JourneyTransformer(cfg).heads


def test_sampled_softmax_at_200k_items_touches_only_sampled_rows():
    torch.manual_seed(0)
    net = _net(200_002, item_negatives=512)
    assert net.cfg.n_items > net.cfg.item_full_softmax_max
    net.set_item_stats(np.random.default_rng(0).zipf(1.3, 50_000) % 200_000 + 2)
    q = torch.randn(32, 16, requires_grad=True)
    target = torch.randint(2, 200_002, (32, 1))
    loss = net.item_loss(q, target)
    loss.backward()
    assert torch.isfinite(loss)
    touched = (net.embed.categorical[-1].weight.grad.abs().sum(1) > 0).sum().item()
    assert 0 < touched <= 512 + 32  # negatives + targets: no (B, 200,000) softmax was taken


def test_sampled_softmax_with_log_q_estimates_the_full_softmax():
    """With the log-Q correction, the sampled loss over a skewed proposal is close to the
    full cross-entropy."""
    torch.manual_seed(0)
    task = NextItem()
    v, d = 3000, 8
    weight, bias = torch.randn(v, d), torch.zeros(v)
    q, target = torch.randn(64, d), torch.randint(2, v, (64, 1))
    p = 1.0 / np.arange(1, v + 1) ** 0.8
    p[:2] = 0
    log_q = torch.log(torch.from_numpy(p / p.sum()).float())
    full = task.item_loss(q, target, weight, bias, log_q, v, 1)
    sampled = torch.stack([task.item_loss(q, target, weight, bias, log_q, 0, 1000) for _ in range(20)]).mean()
    assert abs(sampled - full) / full < 0.05


def test_seen_items_leave_the_softmax_the_target_never():
    """With seen ids, the loss is the cross-entropy over the items the ranking serves (seen
    items masked, as item_outputs masks them): full softmax exactly, sampled approximately; a
    target among the seen ids stays in (a finite loss)."""
    torch.manual_seed(0)
    task = NextItem()
    v, d = 400, 8
    weight, bias = torch.randn(v, d), torch.zeros(v)
    q, target = torch.randn(32, d), torch.randint(2, v, (32, 1))
    seen = torch.randint(0, v, (32, 20))  # padding (0) and <unk> (1) among them
    log_q = torch.full((v,), -np.log(v - 2))
    log_q[:2] = float("-inf")
    logits = q @ weight.T + bias
    logits[:, :2] = float("-inf")
    hidden = logits.scatter(1, seen, float("-inf")).scatter(1, target, logits.gather(1, target))
    expected = -hidden.log_softmax(-1).gather(1, target).mean()
    full = task.item_loss(q, target, weight, bias, log_q, v, 1, seen)
    assert torch.allclose(full, expected, atol=1e-5)
    assert full < task.item_loss(q, target, weight, bias, log_q, v, 1)  # fewer competitors
    sampled = torch.stack([task.item_loss(q, target, weight, bias, log_q, 0, 2000, seen) for _ in range(10)]).mean()
    assert abs(sampled - full) / full < 0.05
    seen[:, 0] = target[:, 0]  # a target the customer had: still scored
    assert torch.isfinite(task.item_loss(q, target, weight, bias, log_q, v, 1, seen))


def test_every_position_loss_targets_new_items_when_the_ranking_excludes_seen_ones():
    """item_exclude_seen: position i's target is an item not among events 0..i (a repeat is
    no target) and those items leave its softmax; without it every next item counts, all in."""
    torch.manual_seed(0)
    categorical = torch.tensor([[[2, 2, 5], [3, 2, 7], [2, 3, 5], [3, 3, 9], [0, 0, 0]]])  # items 5 7 5 9
    numeric = torch.zeros(1, 5, 7)
    for exclude in (True, False):
        net = _net(12, exclude=exclude).eval()
        hidden = torch.randn(1, 5, 16)
        with torch.no_grad():
            got = net.next_item_loss(hidden, categorical, numeric)
            q = net.heads["next_item"](hidden[0, :3])  # positions 0, 1, 2 predict items 7, 5, 9
            if exclude:  # position 1's 5 is a repeat; 0 sees {5}, 2 sees {5, 7, 5}
                want = net.item_loss(q[[0, 2]], torch.tensor([[7], [9]]), torch.tensor([[5, 0, 0, 0, 0], [5, 7, 5, 0, 0]]))
            else:
                want = net.item_loss(q, torch.tensor([[7], [5], [9]]))
        assert got is not None and torch.allclose(got, want, atol=1e-6), exclude


def test_top_k_in_the_model_excludes_seen_items_padding_and_unk():
    net = _net(12).eval()
    categorical = torch.tensor([[[2, 2, 5], [3, 2, 7], [0, 0, 0]]])  # (1, T, C): items 5, 7
    q = torch.randn(1, 16)
    out = net.item_outputs(q, categorical)
    assert out["next_item_ids"].shape == (1, 10)  # k capped at the 10 real items
    listed = out["next_item_ids"][0].tolist()
    scores = out["next_item_scores"][0]
    real = [i for i, s in zip(listed, scores.tolist(), strict=True) if s > -1e8]
    assert set(real) == set(range(2, 12)) - {5, 7} and (scores[:-1] >= scores[1:]).all()
    assert [o.name for o in net.outputs] == ["next_item_ids", "next_item_scores", "embedding"]
    keep = _net(12, exclude=False).eval().item_outputs(q, categorical)["next_item_ids"][0].tolist()
    assert {5, 7} <= set(keep) and not {0, 1} & set(keep)


@pytest.fixture(scope="module")
def catalogue():
    world = CatalogueWorld(n_customers=600, n_items=120, days=200, seed=3)
    events = world.generate().with_row_index("_row")
    features = FeatureConfig(max_len=32, categorical=("action", "channel", "item"))
    vocabs = Vocabularies.build(events, ("action", "channel"))
    vocabs["item"] = item_vocab(events, 1, ITEM_SCHEMA, "world")
    labels = LabelConfig(horizon_days=14)
    build = lambda cut: build_sequences(  # noqa: E731
        events, cut, vocabs, features, labels, labelers=registry.labelers(["next_item"])
    )
    return build(datetime(2025, 6, 1, tzinfo=timezone.utc)), build(datetime(2025, 6, 20, tzinfo=timezone.utc))


def test_baselines_rank_the_catalogue_and_sequence_signal_beats_popularity(catalogue):
    train, test = catalogue
    ctx = BaselineContext(horizon_days=14, n_actions=4, labels=LabelConfig(horizon_days=14))
    task = NextItem()
    scores = {}
    for b in (GlobalPopularity(), RepeatItems(), ItemTransitions(), ItemCooccurrence()):
        ranked = b.fit(train, ctx).predict(test)
        assert ranked.shape == (len(test), 20) and (ranked >= 2).all()
        items = test.categorical[:, -1]
        rows = np.repeat(np.arange(len(test)), test.lengths)
        seen = np.zeros((len(test), ranked.max() + 1), bool)
        ok = items < seen.shape[1]
        seen[rows[ok], items[ok]] = True
        assert not np.take_along_axis(seen, ranked, 1).any(), f"{b.name} lists a seen item"
        scores[b.name] = task.score(ranked, test.labels["next_item"])["ndcg@10"]
    assert scores["item_transitions"] > scores["item_popularity"] + 0.05


def test_next_item_is_in_every_layer(catalogue):
    """The registry contract of tests/unit/test_tasks.py, on data with an item column (the
    session's synthetic events have none, so the parametrised contract skips next_item)."""
    from pathlib import Path

    from journeyformer.data.preprocessing import Preprocessing
    from journeyformer.evaluation.protocol import BaselineData, Population, score
    from journeyformer.evaluation.render import render_text
    from journeyformer.export.onnx import io_spec
    from journeyformer.inference.bundle import Bundle
    from journeyformer.inference.loop import prediction_frame, prediction_schema
    from journeyformer.jobs.train import learnable_tasks
    from journeyformer.model.runner import predict_sequences
    from journeyformer.tasks.boosting import Boosted, available
    from journeyformer.tasks.registry import Baselines
    from journeyformer.training.module import JourneyModule

    train, test = catalogue
    task = registry.get("next_item")
    n_items = int(train.categorical[:, -1].max()) + 1
    labels = LabelConfig(horizon_days=14)
    events_schema = EventSchema(columns={"item": "item"})
    features = FeatureConfig(max_len=32, categorical=("action", "channel", "item"))
    net = JourneyTransformer(
        ModelConfig(
            categorical_sizes=(int(train.categorical[:, 0].max()) + 1, int(train.categorical[:, 1].max()) + 1, n_items),
            n_numeric=train.numeric.shape[1], n_context=train.context.shape[1], max_len=32, d_model=16,
            n_heads=2, d_ff=16, n_layers=1, tasks={"next_item": 1.0}, n_items=n_items, item_exclude_seen=True,
        )  # fmt: skip
    ).eval()
    sample = test.take(np.arange(64))
    outputs = predict_sequences(net, sample)
    assert list(outputs) == ["next_item_ids", "next_item_scores", "embedding"], "named outputs"
    assert outputs["next_item_ids"].dtype == np.int64
    spec = io_spec(net)["outputs"]
    assert [(o["name"], o["dtype"]) for o in spec[:2]] == [("next_item_ids", "int64"), ("next_item_scores", "float32")]
    module = JourneyModule(net.cfg.to_dict(), {})
    assert set(module.val_metrics) == {"next_item"}, "logged metrics"
    # baselines (the LightGBM ranker included), learnability
    assert any(isinstance(b, Boosted) for b in task.baselines())
    base = Baselines.fit(train, 14.0, 4, ["next_item"], val=test, labels=labels)
    fitted = [b.name for b in base.fitted["next_item"]]
    assert fitted == [b.name for b in task.baselines() if available() or b.name != "lightgbm"]
    y = train.labels["next_item"]
    assert task.unlearnable_reason(y) is None and isinstance(task.unlearnable_reason(np.full_like(y, 5)), str)
    assert learnable_tasks({"next_item": 1.0}, train) == {"next_item": 1.0}
    # evaluation with bootstrap verdicts
    population = Population(sample, "sample", "the first 64", {"status": "complete", "cutoff": "2025-06-20", "ends": "2025-07-04"})
    result = score(population, outputs, base, BaselineData(train, None, "train"), ["next_item"], n_boot=50)
    assert "ndcg@10" in result["model"]["next_item"] and "next_item" in result["intervals"]
    assert "next_item" in render_text(result)
    # predictions: the user's item ids, best first
    vocabs = Vocabularies.build(pl.DataFrame({"action": ["product_view"], "channel": ["web"]}), ("action", "channel"))
    vocabs["item"] = Vocabularies.from_dict({"item": ["<pad>", "<unk>", *[f"i{k}" for k in range(n_items - 2)]]})["item"]
    pre = Preprocessing(events_schema, features, labels, vocabs)
    bundle = Bundle(Path("."), {"tasks": {"next_item": 1.0}, "preprocessing": pre.to_dict()})
    frame = prediction_frame(sample, outputs, bundle, CUT)
    assert frame.schema == prediction_schema(bundle, sample.customer_id.dtype)
    first = frame["next_items"][0].to_list()
    assert len(first) == 20 and first[0] == f"i{outputs['next_item_ids'][0, 0] - 2}"


def _sku_events(tmp_path, name: str, sku: pl.Series) -> pl.DataFrame:
    """Customer 1: 10, 11 before the cutoff, 12 after; customer 2: 10, 99 (never in
    training), then 10, 11 after; ``sku`` typed as given, read from parquet."""
    frame = pl.DataFrame(
        {
            "customer_id": [1, 1, 1, 2, 2, 2, 2],
            "timestamp": ["2025-02-01", "2025-02-10", "2025-03-02", "2025-02-05", "2025-02-06", "2025-03-03", "2025-03-04"],
            "channel": ["web"] * 7,
            "action": ["view"] * 7,
            "amount": [0.0] * 7,
        }
    ).with_columns(sku.alias("sku"))
    frame.write_parquet(tmp_path / name)
    return load_events(tmp_path / name, ITEM_SCHEMA)


def test_integer_and_string_ids_meet_and_unseen_items_are_counted_never_listed(tmp_path):
    ids = [10, 11, 12, 10, 99, 10, 11]
    trained = _sku_events(tmp_path, "int.parquet", pl.Series(ids, dtype=pl.Int64))
    scored = _sku_events(tmp_path, "str.parquet", pl.Series([str(i) for i in ids]))
    assert trained["item"].to_list() == scored["item"].to_list()  # both read as text
    vocab = item_vocab(trained.filter(pl.col("item") != "99"), 1, ITEM_SCHEMA, "train")
    assert "99" not in vocab.index
    features = FeatureConfig(max_len=8, categorical=("action", "channel", "item"))
    vocabs = Vocabularies.build(trained, ("action", "channel"))
    vocabs["item"] = vocab
    labels = LabelConfig(item_exclude_seen=False)
    seqs = build_sequences(scored, CUT, vocabs, features, labels, labelers=registry.labelers(["next_item"]))
    assert seqs.unknown_counts == {"item": 1}  # customer 2's 99, counted
    kept = item_ids(seqs).tolist()
    assert kept == [vocab.index["10"], vocab.index["11"], vocab.index["10"], 1]  # 99 is <unk>
    ctx = BaselineContext(horizon_days=30, n_actions=2, labels=labels)
    for b in (GlobalPopularity(), RepeatItems(), ItemTransitions(), ItemCooccurrence()):
        ranked = b.fit(seqs, ctx).predict(seqs)
        assert 1 not in ranked, f"{b.name} recommends <unk>"


def test_one_item_catalogue_lists_that_item_and_pads_the_rest(tmp_path, caplog):
    events = _events(tmp_path, ["A", "B", "B", "C", "B", "A", None])
    features = FeatureConfig(max_len=8, categorical=("action", "channel", "item"))
    vocabs = Vocabularies.build(events, ("action", "channel"))
    with caplog.at_level(logging.WARNING):
        vocabs["item"] = item_vocab(events, 3, ITEM_SCHEMA, "test")  # B only
    assert "catalogue has one item" in caplog.text and vocabs["item"].tokens[2:] == ("B",)
    for exclude, first in ((False, [2, 2]), (True, [0, 2])):  # customer 1 had B, customer 2 not
        labels = LabelConfig(item_exclude_seen=exclude)
        seqs = build_sequences(events, CUT, vocabs, features, labels, labelers=registry.labelers(["next_item"]))
        ctx = BaselineContext(horizon_days=30, n_actions=2, labels=labels)
        for b in (GlobalPopularity(), RepeatItems(), ItemTransitions(), ItemCooccurrence()):
            ranked = b.fit(seqs, ctx).predict(seqs)
            assert ranked[:, 0].tolist() == first and (ranked[:, 1:] == 0).all(), (b.name, exclude, ranked)
    assert ranking.popularity_bias_at_k(np.array([[2, 0, 0]]), np.array([0.0, 0.0, 5.0]), 3) == 1.0
    out = _net(3).eval().item_outputs(torch.randn(2, 16), torch.tensor([[[2, 2, 2]], [[2, 2, 0]]]))
    assert out["next_item_ids"].shape == (2, 1) and out["next_item_ids"][1].tolist() == [2]  # k: 1
    assert out["next_item_scores"][0, 0] < -1e8 < out["next_item_scores"][1, 0]  # seen: masked tail


def test_catalogue_world_returns_the_latent_state_that_drew_its_events():
    world = CatalogueWorld(n_customers=200, n_items=60, days=100, seed=11)
    events, state = world.simulate()
    assert events.equals(world.generate())  # the same draws, the state beside them
    assert len(state.topic) == len(state.session_start) == events.height
    assert state.interest.shape == (200, world.n_topics) and np.allclose(state.interest.sum(1), 1)
    items = events["item"].str.slice(1).cast(pl.Int64).to_numpy()
    # Popular draws come from the topic in force; follows and repeats mostly stay in it.
    assert np.mean(state.topic_of[items] == state.topic) > 0.7
    gap = events["timestamp"].diff().dt.total_seconds().fill_null(0).to_numpy()
    first = events["customer_id"].diff().fill_null(1).to_numpy() != 0
    assert (state.session_start == (first | (gap > 3600))).all()


def _states(net: JourneyTransformer, categorical, numeric, lengths, stage_now, context) -> torch.Tensor:
    with torch.no_grad():
        return net(categorical, numeric, lengths, stage_now, context).hidden


def test_causal_positions_make_each_state_depend_only_on_its_prefix():
    """model.positions=causal: the states of a journey's first events are the same whether or
    not more events follow, and the event's age does not enter; the default (recency) counts
    positions back from the last event, so both change its states."""
    from support import model_inputs

    for positions, prefix_free in (("causal", True), ("recency", False)):
        net = _net(12, positions=positions).eval()
        categorical, numeric, lengths, stage_now, context = model_inputs(net.cfg, b=1, t=8)
        whole = _states(net, categorical, numeric, lengths, stage_now, context)[0]
        cut = _states(net, categorical[:, :5], numeric[:, :5], torch.tensor([5]), stage_now, context)[0]
        aged = numeric.clone()
        aged[..., 2] += 1.0  # log_age
        other_age = _states(net, categorical, aged, lengths, stage_now, context)[0]
        assert torch.allclose(whole[:5], cut, atol=1e-5) == prefix_free, positions
        assert torch.allclose(whole, other_age, atol=1e-5) == prefix_free, positions


def test_item_query_state_reads_the_last_state_alone():
    """model.item_query=state: the next-item scores come from the state after the last event
    (the input the every-position loss trains), not from the context or the stage; the
    default reads the representation, which does."""
    from support import model_inputs

    for query, context_free in (("state", True), ("representation", False)):
        net = _net(12, item_query=query, positions="causal").eval()
        categorical, numeric, lengths, stage_now, context = model_inputs(net.cfg, b=3, t=8)
        with torch.no_grad():
            out = net(categorical, numeric, lengths, stage_now, context)
            moved = net(categorical, numeric, lengths, stage_now, context + 3.0).raw["next_item"]
        assert torch.allclose(out.raw["next_item"], moved, atol=1e-6) == context_free, query
        if context_free:
            last = out.hidden[torch.arange(3), lengths - 1]
            assert torch.allclose(out.raw["next_item"], net.heads["next_item"](last), atol=1e-6)


def test_item_query_gap_reads_when_the_item_comes():
    """model.item_query_gap: the cutoff's query reads the age of the last event (only the last
    row's), and position i's query in the every-position loss reads the gap of event i + 1;
    without it neither moves the next-item scores' query."""
    from support import model_inputs

    for gap in (True, False):
        net = _net(12, item_query="state", positions="causal", item_query_gap=gap).eval()
        categorical, numeric, lengths, stage_now, context = model_inputs(net.cfg, b=3, t=8)
        lengths, rows = torch.tensor([8, 5, 3]), torch.arange(3)
        numeric[rows, lengths - 1, 2] = numeric[:, 3, 1] = 0.5  # log1p(s) / 10: about 2.5 minutes
        older, earlier = numeric.clone(), numeric.clone()
        older[rows, lengths - 1, 2] = 1.0  # log_age of each row's last event: about 6 days
        earlier[rows, 0, 2] = 1.0  # the age of a first event the query never reads
        with torch.no_grad():
            raw = [net(categorical, x, lengths, stage_now, context).raw["next_item"] for x in (numeric, older, earlier)]
            hidden = net(categorical, numeric, lengths, stage_now, context).hidden
            moved = numeric.clone()
            moved[:, 3, 1] = 1.0  # log_gap of event 3: what position 2 is asked about
            loss = [net.next_item_loss(hidden, categorical, x) for x in (numeric, moved)]
        assert torch.allclose(raw[0][1:], raw[2][1:], atol=1e-6)  # row 0's first event is not its last
        assert (not torch.equal(raw[0], raw[1])) == gap
        assert (not torch.equal(loss[0], loss[1])) == gap


def test_unknown_position_or_query_settings_are_refused():
    with pytest.raises(ConfigError, match=r"model.positions must be one of \['recency', 'causal'\]"):
        _net(12, positions="absolute")
    with pytest.raises(ConfigError, match="model.item_query"):
        _net(12, item_query="rep")
