"""How much room is there for next items: the catalogue world's Bayes ceiling beside the model
and every next-item baseline, on the same test samples.

    .venv/bin/python benchmarks/bench_items_ceiling.py [--customers 1500] [--k 4000] [--draws 4000] [--seed 0]
        [--json benchmarks/results/items_ceiling.json] [override ...]

One training run in the integration test's setting (``tests/integration/test_next_item_train.py``:
1,500 customers, 150 items, 14-day horizon, tiny model with the next_item head alone, 8 epochs,
batches of 64; ``--customers`` more customers of the same world, for narrower intervals; Hydra
overrides after the options are appended), its test table caught on the
way (the model's top 20 and every baseline's), then two Bayes predictors of the same target
(the first catalogue item in the horizon the customer has not had), each ranking the catalogue
by the probability of being that target:

* ``oracle [latent]``: given the customer's latent state at the cutoff (the interest over
  topics and the topic in force, ``CatalogueWorld.simulate``), the future event times and the
  catalogue's topics, popularity and path; ``--k`` Monte Carlo continuations of the generator
  from that state. No predictor of the observable history beats it in expectation.
* ``bayes [history]``: given what an observer sees (the customer's items and times up to the
  cutoff), the world's parameters (the catalogue, the Dirichlet(0.1) prior of interests, the
  drift, follow and repeat probabilities) and the future event times: the interest integrated
  over ``--draws`` importance draws (from Dirichlet(0.1 + the topic counts of the customer's
  items), weighted by the exact likelihood of the customer's items, from the forward algorithm
  over the drifting topic, times prior / proposal), the topic at the cutoff from the
  same filter, then ``--k`` continuations from posterior draws. This is the ceiling of any model
  of the history. (The future times only say whether the first event after the cutoff continues
  a session, which a cutoff rarely splits; the prior predictive of the times is left out.)

Prints the CPU, NDCG@10 / HR@10 / MRR of every row, the paired bootstrap of each ceiling minus
the best baseline and of the model minus the best baseline, and the share of the room (best
baseline -> ``bayes [history]``) the model takes. Not a test.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import polars as pl
from bench_real import CONFIG_DIR, scored_predictions
from hydra import compose, initialize_config_dir
from omegaconf import open_dict

from journeyformer.machine import cpu_info
from journeyformer.metrics.bootstrap import paired_bootstrap
from journeyformer.pipelines import train
from journeyformer.synthetic.catalogue import CatalogueState, CatalogueWorld
from journeyformer.tasks import registry

WORLD = CatalogueWorld(n_customers=1500, n_items=150, days=200, events_per_customer=20, seed=5)
HORIZON_DAYS = 14
OVERRIDES = [  # the integration test's run (tests/support.py tiny_overrides and the test's own)
    "model=tiny", "data.synthetic=null", "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false", "logger=csv", "seed=7", "blend=false",
    "labels.cutoffs.max_val_cutoffs=1", "data.extra_categorical=[]", "data.extra_numeric=[]",
    "data.columns.item=item", "data.max_len=32", f"labels.horizon_days={HORIZON_DAYS}",
    "labels.cutoffs.train_stride_days=14", "labels.cutoffs.min_samples=50",
    "labels.cutoffs.min_eval_samples=10", "model.keep_tasks=[next_item]", "model.d_model=32",
    "data.batch_size=64", "trainer.max_epochs=8",
]  # fmt: skip
LIST_K = 20


class Customer:
    """One test sample's observable history, future times and latent state."""

    def __init__(self, items: np.ndarray, fresh: np.ndarray, future_fresh: np.ndarray,
                 interest: np.ndarray, topic: int) -> None:  # fmt: skip
        self.items = items  # (n,) raw item index of the events up to the cutoff
        self.fresh = fresh  # (n,) bool: the event starts a session
        self.future_fresh = future_fresh  # (m,) the same for the events in the horizon
        self.interest = interest  # latent
        self.topic = topic  # latent: the topic in force at the last event up to the cutoff


def popular_matrix(state: CatalogueState) -> np.ndarray:
    """(n_topics, n_items) P(item | a popular draw of the topic)."""
    if not hasattr(state, "_popular"):
        out = np.zeros((len(state.members), len(state.topic_of)))
        for t, (m, w) in enumerate(zip(state.members, state.weights, strict=True)):
            out[t, m] = w
        object.__setattr__(state, "_popular", out)
    return state._popular  # type: ignore[attr-defined]


def emission(world: CatalogueWorld, state: CatalogueState, c: Customer, j: int) -> np.ndarray:
    """(n_topics,) P(item j | topic, history before j), the generator's draw in closed form."""
    item = c.items[j]
    own = c.items[:j]
    r = world.repeat if len(own) else 0.0
    f = world.follow if j > 0 and not c.fresh[j] else 0.0
    popular = popular_matrix(state)[:, item]
    follow = f * float(j > 0 and state.successor[c.items[j - 1]] == item)
    repeat = r * float(np.mean(own == item)) if len(own) else 0.0
    return repeat + (1 - r) * (follow + (1 - f) * popular)


def posterior(world: CatalogueWorld, state: CatalogueState, c: Customer, draws: int,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Interest draws (M, n_topics) with their importance weights (M,) and the filtered topic
    at the cutoff (M, n_topics), from the forward algorithm over the drifting topic.

    The draws come from Dirichlet(0.1 + the topic counts of the customer's items), closer to
    the posterior than the Dirichlet(0.1) prior; the weights are likelihood x prior / proposal,
    so the estimate is of the same posterior, with far fewer wasted draws."""
    a0 = np.full(world.n_topics, 0.1)
    a1 = a0 + np.minimum(np.bincount(state.topic_of[c.items], minlength=world.n_topics), 1)
    interests = np.maximum(rng.dirichlet(a1, size=draws), 1e-300)
    log_w = _log_dirichlet(interests, a0) - _log_dirichlet(interests, a1)
    alpha = interests.copy()  # the first topic is a draw from the interest
    for j in range(len(c.items)):
        if j:
            alpha = (1 - world.drift) * alpha + world.drift * interests
        alpha = alpha * emission(world, state, c, j)
        norm = alpha.sum(1)
        log_w += np.log(np.maximum(norm, 1e-300))
        alpha /= np.maximum(norm, 1e-300)[:, None]
    w = np.exp(log_w - log_w.max())
    return interests, w / w.sum(), alpha


def _log_dirichlet(x: np.ndarray, a: np.ndarray) -> np.ndarray:
    """(M,) log density of Dirichlet(a) at the rows of x."""
    from math import lgamma

    return (lgamma(a.sum()) - sum(lgamma(v) for v in a)) + (np.log(x) * (a - 1)).sum(1)


def continue_world(world: CatalogueWorld, state: CatalogueState, c: Customer, interest: np.ndarray,
                   topic: np.ndarray, catalogue: np.ndarray, rng: np.random.Generator) -> np.ndarray:  # fmt: skip
    """(K,) the raw item of the target (-1: none in the horizon) of K continuations of the
    generator from (interest (K, T), topic (K,)) over the future events."""
    k = len(topic)
    seen = np.zeros(world.n_items, dtype=bool)
    seen[c.items] = True
    target = np.full(k, -1)
    own = np.tile(c.items, (k, 1))
    prev = np.full(k, c.items[-1])
    cum = np.cumsum(interest, 1)
    for fresh in c.future_fresh:
        drift = rng.random(k) < world.drift
        redraw = np.minimum((cum < rng.random(k)[:, None]).sum(1), world.n_topics - 1)
        topic = np.where(drift, redraw, topic)
        repeat = rng.random(k) < world.repeat
        follow = (rng.random(k) < world.follow) & (not fresh)
        popular = np.empty(k, dtype=np.int64)
        for t in np.unique(topic):
            rows = np.flatnonzero(topic == t)
            popular[rows] = rng.choice(state.members[t], size=len(rows), p=state.weights[t])
        mine = own[np.arange(k), rng.integers(0, own.shape[1], k)]
        item = np.where(repeat, mine, np.where(follow, state.successor[prev], popular))
        new = (target < 0) & ~seen[item] & catalogue[item]
        target[new] = item[new]
        own = np.column_stack([own, item])
        prev = item
    return target


def ranking(targets: np.ndarray, n_items: int, to_id: np.ndarray) -> np.ndarray:
    """(LIST_K,) vocabulary ids of the most frequent targets, best first (0-padded)."""
    counts = np.bincount(targets[targets >= 0], minlength=n_items).astype(float)
    order = np.argsort(-counts, kind="stable")
    order = order[counts[order] > 0][:LIST_K]
    out = np.zeros(LIST_K, dtype=np.int64)
    out[: len(order)] = to_id[order]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--customers", type=int, default=WORLD.n_customers)
    ap.add_argument("--k", type=int, default=4000, help="Monte Carlo continuations per sample")
    ap.add_argument("--draws", type=int, default=4000, help="prior interest draws per sample")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()
    cpu, _, cores = cpu_info()
    world = dataclasses.replace(WORLD, n_customers=args.customers)
    events, state = world.simulate()
    events = events.with_columns(pl.col("item").str.slice(1).cast(pl.Int64))  # integer ids, as the test
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "events.parquet"
        events.write_parquet(path)
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            cfg = compose("train", overrides=[f"data.path={path}", *OVERRIDES, *args.overrides])
        with open_dict(cfg):
            cfg.run_dir = cfg.paths.output_dir = tmp
        wall = time.perf_counter()
        with scored_predictions() as scored:
            result = train(cfg)
        wall = time.perf_counter() - wall
    seqs = scored["seqs"]
    y = seqs.labels["next_item"]
    vocab = result.data.preprocessing.vocabs["item"]
    to_id = np.array([vocab.index.get(str(i), 1) for i in range(world.n_items)])
    catalogue = to_id >= 2
    task = registry.get("next_item")

    # Each test sample's history, future times and latent state, from the generator's rows.
    rows = events.with_row_index("_row")
    rng = np.random.default_rng(args.seed)
    oracle = np.zeros((len(seqs), LIST_K), dtype=np.int64)
    bayes = np.zeros_like(oracle)
    grouped = {cid: (r, t) for cid, r, t in rows.group_by("customer_id").agg("_row", "timestamp").iter_rows()}
    ceiling_wall = time.perf_counter()
    for i, (cid, cut) in enumerate(zip(seqs.customer_id.to_list(), seqs.cutoff, strict=True)):
        if y[i, 0] < 2:
            continue
        r, t = grouped[cid]
        r, t = np.asarray(r), np.asarray(t, dtype="datetime64[us]")
        cut = np.datetime64(cut, "us")
        end = cut + np.timedelta64(int(timedelta(days=HORIZON_DAYS).total_seconds() * 1e6), "us")
        past, future = r[t <= cut], r[(t > cut) & (t <= end)]
        c = Customer(
            items=np.asarray([int(x) for x in events["item"].gather(past)]),
            fresh=state.session_start[past], future_fresh=state.session_start[future],
            interest=state.interest[int(cid) - 1], topic=int(state.topic[past[-1]]),
        )  # fmt: skip
        k = args.k
        got = continue_world(world, state, c, np.tile(c.interest, (k, 1)), np.full(k, c.topic), catalogue, rng)
        oracle[i] = ranking(got, world.n_items, to_id)
        interests, w, alpha = posterior(world, state, c, args.draws, rng)
        m = rng.choice(len(w), size=k, p=w)
        cum = np.cumsum(alpha[m], 1)
        topic = np.minimum((cum < rng.random(k)[:, None]).sum(1), world.n_topics - 1)
        got = continue_world(world, state, c, interests[m], topic, catalogue, rng)
        bayes[i] = ranking(got, world.n_items, to_id)
    ceiling_wall = time.perf_counter() - ceiling_wall

    table = {"oracle [latent]": oracle, "bayes [history]": bayes, "model": scored["outputs"]["next_item_ids"],
             **scored["baselines"]["next_item"]}  # fmt: skip
    scores = {name: task.score(ranked, y) for name, ranked in table.items()}
    baselines = list(scored["baselines"]["next_item"])
    best = max(baselines, key=lambda b: scores[b]["ndcg@10"])
    n = int((y[:, 0] >= 2).sum())
    print(f"catalogue world ({world.n_customers:,} customers, {world.n_items} items, horizon {HORIZON_DAYS} d), {n} labelled test samples; "
          f"CPU {cpu} ({cores} cores); training {wall:.0f} s, ceilings {ceiling_wall:.0f} s (K={args.k}, draws={args.draws})")  # fmt: skip
    print(f"{'':<24}{'NDCG@10':>9}{'HR@10':>8}{'MRR':>8}")
    for name, m in scores.items():
        print(f"{name:<24}{m['ndcg@10']:>9.3f}{m['hr@10']:>8.3f}{m['mrr']:>8.3f}")
    groups = seqs.customer_id.to_numpy()
    diffs = {}
    for name in ("oracle [latent]", "bayes [history]", "model"):
        b = paired_bootstrap(lambda p, yy: task.score(p, yy)["ndcg@10"], table[name], table[best], y, groups)
        diffs[name] = b
        print(f"{name} - {best} NDCG@10: {b['delta']:+.3f} [{b['low']:+.3f}, {b['high']:+.3f}] -> {b['verdict']}")
    b = paired_bootstrap(lambda p, yy: task.score(p, yy)["ndcg@10"], table["bayes [history]"], table["model"], y, groups)
    diffs["bayes [history] - model"] = b
    print(f"bayes [history] - model NDCG@10: {b['delta']:+.3f} [{b['low']:+.3f}, {b['high']:+.3f}] -> {b['verdict']}")
    room = scores["bayes [history]"]["ndcg@10"] - scores[best]["ndcg@10"]
    taken = scores["model"]["ndcg@10"] - scores[best]["ndcg@10"]
    share = taken / room if room > 0 else float("nan")
    print(f"room (best baseline {best} -> bayes [history]): {room:+.3f} NDCG@10; the model takes {taken:+.3f} = {share:.0%}")
    if args.json:
        args.json.write_text(json.dumps({"cpu": cpu, "cores": cores, "customers": world.n_customers, "n_test": n,
                                         "overrides": args.overrides, "k": args.k, "draws": args.draws,
                                         "scores": scores, "best_baseline": best, "bootstrap": diffs, "room": room,
                                         "share": share, "train_seconds": wall}, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
