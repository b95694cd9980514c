"""The network on its own: shapes, masking, causality, the value head, config checks."""

from __future__ import annotations

import math

import pytest
import torch
from support import model_inputs

from journeyformer.model.config import ModelConfig
from journeyformer.model.encoder import attention_mask
from journeyformer.model.network import JourneyTransformer
from journeyformer.tasks.value import ziln_expected, ziln_loss


def make_cfg(**kw) -> ModelConfig:
    base = dict(categorical_sizes=(9, 5), n_numeric=7, n_context=6, max_len=16, d_model=16, n_layers=2, n_heads=2, d_ff=32, dropout=0.0)
    base.update(kw)
    return ModelConfig(**base)


def random_inputs(cfg: ModelConfig, b: int = 4, t: int = 10, seed: int = 0):
    return model_inputs(cfg, b, t, seed)


def test_output_shapes_and_probabilities():
    cfg = make_cfg()
    net = JourneyTransformer(cfg).eval()
    outs = net.predict(*random_inputs(cfg))
    assert tuple(outs) == net.output_names
    assert outs["next_action_probs"].shape == (4, 9)
    assert outs["stage_probs"].shape == (4, cfg.n_stages)
    assert outs["embedding"].shape == (4, 16)
    torch.testing.assert_close(outs["next_action_probs"].sum(-1), torch.ones(4))
    torch.testing.assert_close(outs["stage_probs"].sum(-1), torch.ones(4))
    for name in ("churn_probability", "spend_probability"):
        assert ((outs[name] >= 0) & (outs[name] <= 1)).all()
    assert (outs["expected_value"] >= 0).all()
    assert all(torch.isfinite(v).all() for v in outs.values())


def test_padding_does_not_change_predictions():
    """A customer scored alone (T = length) and inside a longer padded batch agree."""
    cfg = make_cfg()
    net = JourneyTransformer(cfg).eval()
    cat, num, lengths, stage, ctx = random_inputs(cfg, b=4, t=10)
    full = net.predict(cat, num, lengths, stage, ctx)
    i = int(torch.argmin(lengths))
    n = int(lengths[i])
    alone = net.predict(cat[i : i + 1, :n], num[i : i + 1, :n], lengths[i : i + 1], stage[i : i + 1], ctx[i : i + 1])
    assert full.keys() == alone.keys()
    for name in full:
        torch.testing.assert_close(full[name][i : i + 1], alone[name], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("n_layers", [1, 2, 3])
def test_last_position_path_matches_every_position(n_layers):
    """predict(last_only=True) computes the last block at one position: same outputs."""
    cfg = make_cfg(n_layers=n_layers)
    net = JourneyTransformer(cfg).eval()
    inputs = random_inputs(cfg, b=6, t=12)
    fast, full = net.predict(*inputs, last_only=True), net.predict(*inputs, last_only=False)
    for name in full:
        torch.testing.assert_close(fast[name], full[name], atol=1e-5, rtol=1e-4)


def test_attention_is_causal():
    """Changing event k must not change hidden states before k."""
    cfg = make_cfg()
    net = JourneyTransformer(cfg).eval()
    cat, num, lengths, stage, ctx = random_inputs(cfg, b=2, t=8)
    lengths[:] = 8
    h1 = net(cat, num, lengths, stage, ctx).hidden
    cat2 = cat.clone()
    cat2[:, 5, 0] = (cat2[:, 5, 0] % 7) + 2 if cat2[0, 5, 0] != 2 else 3
    h2 = net(cat2, num, lengths, stage, ctx).hidden
    torch.testing.assert_close(h1[:, :5], h2[:, :5])
    assert not torch.allclose(h1[:, 5:], h2[:, 5:])


def test_training_forward_gives_the_masked_states_at_every_real_position():
    """Training attends with the causal flag alone (no padding mask): at real positions the
    hidden states, and so every loss, equal the eval path's with the explicit mask; padding
    of other customers in the batch changes nothing either."""
    cfg = make_cfg(n_layers=3)  # dropout 0: train and eval differ only in the attention path
    net = JourneyTransformer(cfg)
    cat, num, lengths, stage, ctx = random_inputs(cfg, b=6, t=12)
    lengths[0] = 12  # one full row, so the others are padded
    trained = net.train()(cat, num, lengths, stage, ctx)
    masked = net.eval()(cat, num, lengths, stage, ctx)
    real = torch.arange(12)[None, :] < lengths[:, None]
    torch.testing.assert_close(trained.hidden[real], masked.hidden[real], atol=1e-6, rtol=1e-5)
    for name in masked.raw:
        torch.testing.assert_close(trained.raw[name], masked.raw[name], atol=1e-6, rtol=1e-5)
    # without the mask the padded positions do differ: the test would see a path that ignored it
    assert not torch.allclose(trained.hidden[~real], masked.hidden[~real])


def test_attention_mask_rows_never_empty():
    mask = attention_mask(torch.tensor([1, 3]), 4) == 0  # True = may attend
    assert mask.shape == (2, 1, 4, 4)
    assert mask.any(-1).all()
    assert not mask[0, 0, 3, 1]  # key beyond length 1 is hidden
    assert not mask[1, 0, 0, 1]  # future key is hidden
    assert mask[1, 0, 2, :3].all()


def test_ziln_expected_value_matches_formula():
    raw = torch.tensor([[0.0, 1.0, 0.5]])
    p, expected = ziln_expected(raw)
    sigma = math.log1p(math.exp(0.5)) + 1e-3
    assert p.item() == pytest.approx(0.5)
    assert expected.item() == pytest.approx(0.5 * math.exp(1.0 + sigma**2 / 2), rel=1e-5)


def test_ziln_loss_prefers_the_right_amount():
    value = torch.tensor([0.0, 20.0])
    good = torch.tensor([[-3.0, 0.0, 0.0], [3.0, math.log(20.0), -2.0]])
    bad = torch.tensor([[3.0, 0.0, 0.0], [-3.0, math.log(2.0), -2.0]])
    assert ziln_loss(good, value) < ziln_loss(bad, value)


def test_disabled_heads_have_no_head_and_no_output():
    cfg = make_cfg(tasks={"churn": 1.0, "next_action": 0, "stage": 0, "value": 0})
    net = JourneyTransformer(cfg).eval()
    assert set(net.heads) == {"churn"}
    outs = net.predict(*random_inputs(cfg))
    assert list(outs) == ["churn_probability", "embedding"]


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"d_model": 10, "n_heads": 4}, "divisible"),
        ({"tasks": {"churn": 0}}, "at least one task"),
        ({"tasks": {"ltv": 1.0}}, "unknown tasks"),
        ({"dropout": 1.5}, "dropout"),
        ({"attention_dropout": -0.1}, "model.attention_dropout must be in"),
        ({"categorical_sizes": (1,)}, "<pad>"),
    ],
)
def test_config_errors_are_clear(kw, message):
    with pytest.raises(ValueError, match=message):
        make_cfg(**kw)


def test_length_bucket_sampler_groups_lengths_and_shards_ranks():
    import numpy as np

    from journeyformer.training.datamodule import LengthBucketSampler

    lengths = np.random.default_rng(0).integers(1, 65, 1000)
    sampler = LengthBucketSampler(lengths, 32, shuffle=True, seed=1, pool_batches=8)
    batches = list(sampler)
    assert sorted(i for b in batches for i in b) == list(range(1000))
    spread = np.mean([lengths[b].max() - lengths[b].min() for b in batches])
    assert spread < 10  # a random batch of 32 would span ~60
    assert list(sampler) != batches  # a new order every epoch
    ranks = [list(LengthBucketSampler(lengths, 32, True, seed=1, rank=r, world_size=2)) for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == len(LengthBucketSampler(lengths, 32, True, world_size=2))
    assert not set(map(tuple, ranks[0])) & set(map(tuple, ranks[1]))


def test_next_event_loss_is_tied_to_the_next_action_head(caplog):
    """The auxiliary next-event loss trains through the next_action head; a model without that
    head says once that the loss is off (not silently), and trains without it."""
    import logging

    from journeyformer.data.features.batch import MODEL_INPUTS, Batch
    from journeyformer.training.module import JourneyModule

    def losses(tasks):
        cfg = make_cfg(tasks=tasks, next_event_weight=0.5)
        with caplog.at_level(logging.INFO, logger="journeyformer.training.module"):
            module = JourneyModule(cfg.to_dict(), {})
        inputs = dict(zip(MODEL_INPUTS, model_inputs(cfg, b=3, t=6, seed=1), strict=True))
        targets = {"churn": torch.tensor([0.0, 1.0, 0.0]), "next_action": torch.tensor([2, 3, 4])}
        batch = Batch(torch.arange(3), inputs, {k: v for k, v in targets.items() if k in tasks})
        return module, module.losses(batch, module.net(*inputs.values()))

    module, got = losses({"churn": 1.0, "next_action": 1.0})
    assert module.next_event_on and set(got) == {"churn", "next_action", "next_event"}
    assert not any("next-event loss is off" in r.message for r in caplog.records)
    module, got = losses({"churn": 1.0})
    assert not module.next_event_on and set(got) == {"churn"}
    assert any("next-event loss is off" in r.message for r in caplog.records)


def test_cpu_dropout_drops_p_scales_the_rest_and_repeats_under_a_seed():
    from journeyformer.model.dropout import Dropout

    drop = Dropout(0.1).train()
    x = torch.ones(64, 50, 32, requires_grad=True)
    torch.manual_seed(3)
    y = drop(x)
    kept = y != 0
    assert abs(kept.float().mean().item() - 0.9) < 0.005  # 102,400 elements: sd 0.001
    assert torch.allclose(y[kept], torch.full_like(y[kept], 1 / 0.9))
    y.sum().backward()  # the gradient is the same mask and scale
    assert torch.equal(x.grad, y.detach())
    torch.manual_seed(3)
    assert torch.equal(drop(x), y)  # same seed, same mask
    assert not torch.equal(drop(x), y)  # the generator moved on: a new mask
    # positions are independent: no period in the mask along any axis
    assert not torch.equal(kept[:32], kept[32:]) and not torch.equal(kept[..., :16], kept[..., 16:])
    assert torch.equal(drop.eval()(x), x) and torch.equal(Dropout(0.0).train()(x), x)
