"""Next items on MovieLens-100k, out of time: the model against every next-item baseline.

Not a test. One training run per seed (``--seeds``; the table holds means over seeds, and
the paired bootstraps draw users once per replicate for every seed) (``data.columns.item=item_id``, the next_item head alone, small
model) on the ratings inside the ``recbole==1.2.1`` wheel (``real_logs.py``), test cutoff
``--cutoff`` (default 1998-01-31): the test customers are the users with a rating before it
and one within the 30-day horizon; the next film is the first film rated after the cutoff that
the user had not rated (``exclude_seen``, as in the film literature). Full ranking over the
catalogue; the table has HR@10, NDCG@10, MRR, coverage@10 and popularity bias@10 for the
model and every baseline, and the paired bootstrap of the model minus the best baseline.

With ``--recbole``, RecBole's own SASRec and GRU4Rec (``recbole==1.2.1``) are trained by RecBole
in the benchmark-only environment ``~/.cache/journeyformer/recbole-venv`` on the same cutoff,
and their top 20 over the same candidates (the model's catalogue, rated films masked) are
scored by the same code, with a paired bootstrap of the model against each
(``recbole_items.py``). The environment: ``python -m venv`` there, a ``.pth`` file naming this
project's site-packages (torch, numpy, polars), then ``pip install --no-deps recbole==1.2.1
colorlog==4.7.2 colorama==0.4.4 texttable tabulate``, ``pip install tensorboard "numpy<2" "pandas<3"``
(RecBole 1.2.1 uses ``np.float_``, gone in NumPy 2). RecBole's lists are kept in
``~/.cache/journeyformer/recbole-runs/`` per spec and events: a rerun with the same RecBole
options and split reads them instead of retraining RecBole (delete the file to retrain).

With ``--protocol loo``, the literature's leave-one-out instead (SASRec, BERT4Rec, RecBole's
leaderboards): every user's last rating is the test target, the one before it validation, the
rest training; all 943 users are test users. The pipeline splits customers and time, so the
benchmark builds it from copies (``leave_one_out_events``): per user, a test copy (the user id:
every rating, the last one just after the test cutoff T), a validation copy (``<id>#val``: all
but the last, its last just after T - horizon) and a training copy (``<id>#train``: all but the
last two, its last just after T - 2 horizons, the one training cutoff). Each copy keeps the real
gaps between its ratings up to the one before its target, which lands 1 s before its cutoff (so
the time since the last event is constant at every cutoff); the target follows 1 s after the
cutoff plus its real gap (capped below the horizon). The copies are split by their suffix
(``by_suffix``), not by the hash, and only training copies give training samples. The films of
a user's kept events (the last ``data.max_len``) are masked for every row, the model's and the
baselines' alike.

Only the last ``data.max_len`` ratings of a copy are kept, so each user also has extra training
copies every ``--prefix-stride`` ratings back (25 by default; ``--prefix-copies``, on by
default): the every-position loss then has most training ratings as targets twice, once with
at least 25 of the ratings before them in view, where SASRec's training on every prefix sees up
to 50 (with copies ``max_len`` apart, a rating early in its copy is predicted from few).

The model's settings for it (``LOO_OVERRIDES``): ``data.max_len=50`` (RecBole's), the cutoff
head's loss weighted 0.1 and the every-position loss 1.0, causal positions and the state query
(``model.positions``, ``model.item_query``), dropout 0.3, up to 30 epochs (see the comment
there). Hydra overrides on the command line come after them.

    python benchmarks/bench_items_ml100k.py [--seeds 0,1,2] [--protocol oot|loo] [--recbole]
        [--json benchmarks/results/items_ml100k.json] [hydra overrides]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import polars as pl
from bench_real import CONFIG_DIR, scored_predictions
from hydra import compose, initialize_config_dir
from omegaconf import open_dict
from real_logs import LOGS, events_path

from journeyformer.data.preprocessing import SplitConfig
from journeyformer.io import atomic_write_text
from journeyformer.machine import cpu_info
from journeyformer.metrics import ranking
from journeyformer.metrics.bootstrap import paired_bootstrap
from journeyformer.pipelines import train
from journeyformer.tasks import registry
from journeyformer.tasks.item_baselines import item_ids

OVERRIDES = [
    "data.columns.item=item_id",
    "model=small",
    "model.keep_tasks=[next_item]",
    "data.batch_size=64",
    "trainer.max_epochs=20",
    "labels.cutoffs.n_train=3",
    "blend=false",
]

# Leave-one-out: one test cutoff for every test copy (any date: the copies are re-timed to it).
LOO_CUTOFF = datetime(1998, 6, 1, tzinfo=timezone.utc)
LOO_SUFFIX = {"val": "#val", "train": "#train"}  # test copies keep the user id
LOO_OVERRIDES = [
    f"labels.cutoffs.test={LOO_CUTOFF:%Y-%m-%d}",
    "labels.cutoffs.n_train=1",  # training copies' cutoff, T - 2 horizons
    "labels.cutoffs.max_val_cutoffs=1",  # validation copies' cutoff, T - 1 horizon
    "labels.cutoffs.active_within_days=null",
    "labels.cutoffs.sparse=warn",  # every test copy has a rating in the horizon: no churners
    "data.split.train_customers=split",  # only training copies give training samples
    "data.max_len=50",  # RecBole's MAX_ITEM_LIST_LENGTH
    # One target per user at the cutoff (943 samples) overfits in two epochs while the
    # every-position loss (SASRec's signal, every rating of every user) still learns; with the
    # cutoff's loss at full weight, early stopping on the summed validation loss ends the run
    # there (NDCG@10 0.018, against 0.059 so). Weighted down, the sum follows the sequence loss.
    "model.tasks.next_item=0.1",
    "model.next_event_weight=1.0",
    # SASRec's setting: positions from the first kept event and no event age, so every
    # position's state is a prefix's (the every-position loss then trains the state the
    # cutoff reads), the next-item head on that state alone, dropout for a small log. Chosen
    # with --prefix-stride on seed 0 (validation and test tables, docs/next-items.md): report
    # other seeds.
    "model.positions=causal",
    "model.item_query=state",
    "model.dropout=0.3",
    "trainer.max_epochs=30",
    "callbacks.early_stopping.patience=5",
]


def leave_one_out_events(
    events: pl.DataFrame, cutoff: datetime, horizon_days: float, window: int | None = None, stride: int | None = None
) -> pl.DataFrame:
    """The leave-one-out copies of every user (see the module docstring): the test copy
    (target the last rating, cutoff ``cutoff``), ``<id>#val`` (target the one before, cutoff
    one horizon earlier) and ``<id>#train`` (target the one before that, two horizons
    earlier). ``window`` (the model's max_len): also ``<id>#<j>#train``, training copies
    whose target is ``j * window`` ratings earlier, so that the every-position loss over the
    kept ``window`` events of each copy covers every training rating once, as SASRec's
    training on every prefix does (a copy keeps only its last ``window`` events). ``stride``
    (default ``window``): the copies' targets are that many ratings apart instead, so that a
    rating is a target of several copies with more of the ratings before it in view. A user's
    order is the file's (time, then film); users need 4 ratings."""
    h = timedelta(days=horizon_days)
    ordered = (
        events.with_row_index("_row").sort("customer_id", "timestamp", "_row")
        .with_columns(
            pl.int_range(pl.len()).over("customer_id").alias("_pos"),
            pl.len().over("customer_id").cast(pl.Int64).alias("_n"),
        )
    )  # fmt: skip
    short = ordered.filter(pl.col("_n") < 4).get_column("customer_id").unique()
    if len(short):
        raise ValueError(f"leave-one-out needs 4 ratings per user; {len(short)} have fewer, e.g. {short[0]}")
    copies = []
    kinds = [(1, "", cutoff), (2, LOO_SUFFIX["val"], cutoff - h), (3, LOO_SUFFIX["train"], cutoff - 2 * h)]
    if window:
        longest = int(ordered.get_column("_n").max())
        stride = stride or window
        kinds += [(3 + j * stride, f"#{j}{LOO_SUFFIX['train']}", cutoff - 2 * h) for j in range(1, longest // stride + 1)]
    for back, suffix, cut in kinds:
        k = pl.col("_n") - back  # position of this copy's target
        part = ordered.filter((pl.col("_pos") <= k) & (k >= 1))  # a target and one rating before it
        if back > 3:  # an extra training copy: its window and target only
            part = part.filter(pl.col("_pos") >= k - window)
        before = pl.col("timestamp").filter(pl.col("_pos") == k - 1).first().over("customer_id")
        target = pl.col("timestamp").filter(pl.col("_pos") == k).first().over("customer_id")
        gap = pl.min_horizontal(target - before, pl.lit(h - timedelta(days=1)))
        stamp = (
            pl.when(pl.col("_pos") < k)
            .then(pl.lit(cut) - timedelta(seconds=1) - (before - pl.col("timestamp")))
            .otherwise(pl.lit(cut) + timedelta(seconds=1) + gap)
        )
        copies.append(part.with_columns(stamp.alias("timestamp"), pl.col("customer_id") + suffix))
    return pl.concat(copies).drop("_row", "_pos", "_n").sort("customer_id", "timestamp")


@contextmanager
def by_suffix() -> Iterator[None]:
    """For the run: customers split by their leave-one-out suffix instead of the hash."""
    original = SplitConfig.customers

    def customers(self: SplitConfig, events: pl.DataFrame) -> dict[str, pl.Series]:
        ids = events.get_column("customer_id").unique().sort()
        val, train = (ids.str.ends_with(LOO_SUFFIX[s]) for s in ("val", "train"))
        return {"train": ids.filter(train), "val": ids.filter(val), "test": ids.filter(~val & ~train)}

    SplitConfig.customers = customers  # type: ignore[method-assign]
    try:
        yield
    finally:
        SplitConfig.customers = original  # type: ignore[method-assign]


VENV = Path("~/.cache/journeyformer/recbole-venv/bin/python").expanduser()
RECBOLE_RUNS = Path("~/.cache/journeyformer/recbole-runs").expanduser()  # RecBole's lists per spec


def recbole_rows(seqs, pre, events: Path, args: argparse.Namespace) -> dict[str, np.ndarray]:  # noqa: ANN001
    """RecBole's SASRec and GRU4Rec top 20 for the labelled test users, as (N, 20) ids of
    the model's item vocabulary (rows without a label: zeros)."""
    y = seqs.labels["next_item"][:, 0]
    rows = np.flatnonzero(y >= 2)
    tokens = pre.vocabs["item"].tokens
    index = pre.vocabs["item"].index
    users = seqs.customer_id.to_numpy()[rows]
    spec = {"events": str(events), "cutoff": args.cutoff, "users": [str(u) for u in users],
            "targets": [tokens[i] for i in y[rows]], "catalogue": sorted(tokens[2:]),
            "epochs": args.recbole_epochs, "seed": args.seed, "hidden_size": args.recbole_hidden,
            "max_len": 50, "threads": args.recbole_threads, "eval_at_end": args.recbole_eval_at_end}  # fmt: skip
    # RecBole's lists depend only on the spec and the events: kept, so that trying a model
    # setting beside them does not retrain RecBole (delete RECBOLE_RUNS to retrain). The
    # catalogue is a set to RecBole's runner: sorted, so that a setting that reorders the
    # model's vocabulary (its frequencies) without changing it finds the same lists.
    same = {k: v for k, v in spec.items() if k not in ("events", "threads")}
    key = hashlib.sha256(json.dumps(same, sort_keys=True).encode() + Path(events).read_bytes()).hexdigest()[:20]
    kept = args.recbole_lists or RECBOLE_RUNS / f"{key}.json"
    if kept.exists():
        print(f"RecBole: the lists of an identical earlier run ({kept})", flush=True)
        lists = json.loads(kept.read_text())
    else:
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "spec.json").write_text(json.dumps(spec))
            here = Path(__file__).resolve().parent
            subprocess.run([str(VENV), str(here / "recbole_items.py"), f"{tmp}/spec.json", f"{tmp}/out.json"], check=True)
            lists = json.loads((Path(tmp) / "out.json").read_text())
        kept.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(kept, json.dumps(lists))
    out = {}
    for name, by_user in lists.items():
        ranked = np.zeros((len(seqs), 20), dtype=np.int64)
        missing = [str(u) for u in users if str(u) not in by_user]
        if missing:
            raise ValueError(f"{kept}: no {name} list for {len(missing)} test users, e.g. {missing[0]}: another split")
        for r, u in zip(rows, users, strict=True):
            ranked[r] = [index.get(t, 1) for t in by_user[str(u)]]
        out[f"recbole_{name.lower()}"] = ranked
    return out


def train_seed(cfg, seed: int, run_dir: Path | None, loo: bool) -> tuple[dict, object, float]:  # noqa: ANN001
    """One training run of ``cfg`` with ``seed``: (what the test table scored, the run, seconds)."""
    with tempfile.TemporaryDirectory() as tmp, open_dict(cfg):
        cfg.seed = seed
        cfg.run_dir = cfg.paths.output_dir = str(run_dir / f"seed{seed}" if run_dir else tmp)
        wall = time.perf_counter()
        with scored_predictions() as scored, by_suffix() if loo else contextlib.nullcontext():
            result = train(cfg)
        return scored, result, time.perf_counter() - wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="0", help="comma-separated seeds: one training run each, the table pooled")
    ap.add_argument("--cutoff", default="1998-01-31")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--protocol", choices=["oot", "loo"], default="oot",
                    help="oot: out of time at --cutoff; loo: leave-one-out (every user's last rating)")
    ap.add_argument("--recbole", action="store_true", help="also RecBole's SASRec and GRU4Rec")
    ap.add_argument("--recbole-epochs", type=int, default=50)
    ap.add_argument("--recbole-hidden", type=int, default=0, help="hidden size of RecBole's models (0: RecBole's defaults)")
    ap.add_argument("--recbole-eval-at-end", action="store_true", help="validate RecBole's models once, after the last epoch")
    ap.add_argument("--run-dir", type=Path, default=None, help="keep the training runs here (default: temporary folders)")
    ap.add_argument("--prefix-copies", action=argparse.BooleanOptionalAction, default=True,
                    help="loo: training copies every data.max_len ratings back, so every training rating is a target")
    ap.add_argument("--prefix-stride", type=int, default=25,
                    help="loo: the training copies' targets this many ratings apart (0: data.max_len)")
    ap.add_argument("--recbole-threads", type=int, default=1, help="torch threads of RecBole's runs")
    ap.add_argument("--recbole-lists", type=Path, default=None,
                    help="RecBole's lists of an earlier run on the same split (a file of ~/.cache/journeyformer/recbole-runs) instead of its cache key")
    ap.add_argument("--calendar", action="store_true",
                    help="loo: each rating's real date as an input (months since the log's first rating, data.extra_numeric)")
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()
    seeds = [int(x) for x in args.seeds.split(",")]
    args.seed = seeds[0]  # RecBole's runs
    name, _, cores = cpu_info()
    path = events_path("movielens100k")
    loo = args.protocol == "loo"
    protocol = LOO_OVERRIDES if loo else [f"labels.cutoffs.test={args.cutoff}"]
    overrides = [*LOGS["movielens100k"].overrides, *OVERRIDES, *protocol, *args.overrides]
    work = tempfile.TemporaryDirectory()
    if loo:
        last = lambda key: next(o for o in reversed(overrides) if o.startswith(f"{key}=")).split("=")[1]  # noqa: E731
        horizon, window = float(last("labels.horizon_days")), int(last("data.max_len")) if args.prefix_copies else None
        path = Path(work.name) / "loo_events.parquet"
        events = pl.read_parquet(events_path("movielens100k"))
        if args.calendar:  # the copies are re-timed; the real date travels as a column
            since = (pl.col("timestamp") - pl.col("timestamp").min()).dt.total_seconds() / (86400 * 30.44)
            events = events.with_columns(since.alias("months"))
            overrides.append("data.extra_numeric=[months]")
        leave_one_out_events(events, LOO_CUTOFF, horizon, window, args.prefix_stride).write_parquet(path)
        args.cutoff = f"{LOO_CUTOFF:%Y-%m-%d}"
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(
            "train",
            overrides=["data=events", f"data.path={path}",
                       "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false", *overrides],
        )  # fmt: skip
    runs = [train_seed(cfg, seed, args.run_dir, loo) for seed in seeds]
    scored, result, _ = runs[0]
    walls = [w for _, _, w in runs]
    task = registry.get("next_item")
    y = scored["seqs"].labels["next_item"]
    ids = scored["seqs"].customer_id.to_numpy()
    for seed, (other, _, _) in zip(seeds, runs, strict=True):
        if not (np.array_equal(other["seqs"].customer_id.to_numpy(), ids) and np.array_equal(other["seqs"].labels["next_item"], y)):
            raise RuntimeError(f"seed {seed} scored other test users or targets than seed {seeds[0]}")
    n_items = len(result.data.preprocessing.items) - 2
    popularity = np.bincount(item_ids(result.data.splits["train"]), minlength=n_items + 2).astype(float)
    # rows: (N, seeds, k) ranked ids; a row one run gives (RecBole's) is the same for every seed
    rows = {"model": np.stack([sc["outputs"]["next_item_ids"] for sc, _, _ in runs], axis=1)}
    for label in scored["baselines"]["next_item"]:
        rows[label] = np.stack([sc["baselines"]["next_item"][label] for sc, _, _ in runs], axis=1)
    n_labelled = int(ranking.labelled(y).sum())
    what = "leave-one-out" if loo else f"test cutoff {args.cutoff}"
    table: dict = {}

    def mean_over_seeds(ranked: np.ndarray, yy: np.ndarray, key: str = "ndcg@10") -> float:
        return float(np.mean([task.score(ranked[:, i], yy)[key] for i in range(ranked.shape[1])]))

    def report(rows: dict[str, np.ndarray]) -> None:
        """Print the table of ``rows`` (means over seeds; kept in ``--json``)."""
        for label, ranked in rows.items():
            per_seed = [task.score(ranked[:, i], y) for i in range(ranked.shape[1])]
            m = {k: float(np.mean([p[k] for p in per_seed])) for k in per_seed[0]}
            m["coverage@10"] = float(np.mean([ranking.coverage_at_k(ranked[:, i], n_items, 10) for i in range(ranked.shape[1])]))
            m["popularity_bias@10"] = float(np.mean([ranking.popularity_bias_at_k(ranked[:, i], popularity, 10) for i in range(ranked.shape[1])]))
            m["ndcg@10_per_seed"] = [p["ndcg@10"] for p in per_seed]
            table[label] = m
        print(f"MovieLens-100k, {what}, {n_labelled} test users with a next film, {n_items} films; seeds {seeds} "
              f"(means); CPU {name} ({cores} cores); training runs {', '.join(f'{w:.0f}' for w in walls)} s")  # fmt: skip
        print(f"{'':<24}{'HR@10':>8}{'NDCG@10':>9}{'MRR':>8}{'cov@10':>8}{'popbias':>9}")
        for label, m in table.items():
            print(f"{label:<24}{m['hr@10']:>8.3f}{m['ndcg@10']:>9.3f}{m['mrr']:>8.3f}{m['coverage@10']:>8.3f}{m['popularity_bias@10']:>9.3f}")
        # The paired bootstrap of the model against every row, users drawn once per replicate
        # for every seed (the job withholds its verdict where the label window passes the
        # data's end, which a leave-one-out test always does).
        for label in [r for r in rows if r != "model"]:
            b = paired_bootstrap(mean_over_seeds, rows["model"], rows[label], y, ids)
            table[label]["model_minus"] = b
            print(f"model - {label} NDCG@10: {b['delta']:+.3f} [{b['low']:+.3f}, {b['high']:+.3f}] -> {b['verdict']}")
        if args.json:
            atomic_write_text(args.json, json.dumps({
                "cpu": name, "cores": cores, "protocol": args.protocol, "cutoff": args.cutoff, "seeds": seeds,
                "n_test": n_labelled, "n_items": n_items, "overrides": overrides, "table": table,
                "training_seconds": walls}, indent=1))  # fmt: skip

    report(rows)  # the model and the baselines first: RecBole takes long
    if args.recbole:
        recbole_events = path
        if loo:  # the test copies only: RecBole's own leave-one-out on them is the same split
            recbole_events = Path(work.name) / "loo_test_copies.parquet"
            pl.read_parquet(path).filter(~pl.col("customer_id").str.contains("#")).write_parquet(recbole_events)
        start = time.perf_counter()
        got = recbole_rows(scored["seqs"], result.data.preprocessing, recbole_events, args)
        rows |= {label: np.repeat(r[:, None], len(seeds), axis=1) for label, r in got.items()}
        print(f"RecBole: {time.perf_counter() - start:.0f} s (one run each, RecBole's seed {args.seed})", flush=True)
        report(rows)
    work.cleanup()


if __name__ == "__main__":
    main()
