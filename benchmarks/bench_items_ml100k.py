"""Next items on MovieLens-100k, out of time: the model against every next-item baseline.

Not a test. One training run (``data.columns.item=item_id``, the next_item head alone, small
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
colorlog==4.7.2 colorama==0.4.4 texttable tabulate`` and ``pip install tensorboard``.

    python benchmarks/bench_items_ml100k.py [--seed 0] [--recbole] [--json benchmarks/results/items_ml100k.json] [hydra overrides]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_real import CONFIG_DIR, scored_predictions
from hydra import compose, initialize_config_dir
from omegaconf import open_dict
from real_logs import LOGS, events_path

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


VENV = Path("~/.cache/journeyformer/recbole-venv/bin/python").expanduser()


def recbole_rows(seqs, pre, events: Path, args: argparse.Namespace) -> dict[str, np.ndarray]:  # noqa: ANN001
    """RecBole's SASRec and GRU4Rec top 20 for the labelled test users, as (N, 20) ids of
    the model's item vocabulary (rows without a label: zeros)."""
    y = seqs.labels["next_item"][:, 0]
    rows = np.flatnonzero(y >= 2)
    tokens = pre.vocabs["item"].tokens
    index = pre.vocabs["item"].index
    users = seqs.customer_id.to_numpy()[rows]
    spec = {"events": str(events), "cutoff": args.cutoff, "users": [str(u) for u in users],
            "targets": [tokens[i] for i in y[rows]], "catalogue": list(tokens[2:]),
            "epochs": args.recbole_epochs, "seed": args.seed}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "spec.json").write_text(json.dumps(spec))
        here = Path(__file__).resolve().parent
        subprocess.run([str(VENV), str(here / "recbole_items.py"), f"{tmp}/spec.json", f"{tmp}/out.json"], check=True)
        lists = json.loads((Path(tmp) / "out.json").read_text())
    out = {}
    for name, by_user in lists.items():
        ranked = np.zeros((len(seqs), 20), dtype=np.int64)
        for r, u in zip(rows, users, strict=True):
            ranked[r] = [index.get(t, 1) for t in by_user[str(u)]]
        out[f"recbole_{name.lower()}"] = ranked
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cutoff", default="1998-01-31")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--recbole", action="store_true", help="also RecBole's SASRec and GRU4Rec")
    ap.add_argument("--recbole-epochs", type=int, default=50)
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()
    name, _, cores = cpu_info()
    path = events_path("movielens100k")
    overrides = [*LOGS["movielens100k"].overrides, *OVERRIDES, f"labels.cutoffs.test={args.cutoff}", *args.overrides]
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(
            "train",
            overrides=["data=events", f"data.path={path}", f"seed={args.seed}",
                       "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false", *overrides],
        )  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp, open_dict(cfg):
        cfg.run_dir = cfg.paths.output_dir = tmp
        wall = time.perf_counter()
        with scored_predictions() as scored:
            result = train(cfg)
        wall = time.perf_counter() - wall
    test = result.metrics["test"]
    task = registry.get("next_item")
    y = scored["seqs"].labels["next_item"]
    n_items = len(result.data.preprocessing.items) - 2
    popularity = np.bincount(item_ids(result.data.splits["train"]), minlength=n_items + 2).astype(float)
    rows = {"model": scored["outputs"]["next_item_ids"], **scored["baselines"]["next_item"]}
    if args.recbole:
        rows |= recbole_rows(scored["seqs"], result.data.preprocessing, path, args)
    table = {}
    for label, ranked in rows.items():
        m = task.score(ranked, y)
        m["coverage@10"] = ranking.coverage_at_k(ranked, n_items, 10)
        m["popularity_bias@10"] = ranking.popularity_bias_at_k(ranked, popularity, 10)
        table[label] = m
    n_labelled = int(ranking.labelled(y).sum())
    print(f"MovieLens-100k, test cutoff {args.cutoff}, {n_labelled} test users with a next film, "
          f"{n_items} films; CPU {name} ({cores} cores); wall {wall:.0f} s")  # fmt: skip
    print(f"{'':<24}{'HR@10':>8}{'NDCG@10':>9}{'MRR':>8}{'cov@10':>8}{'popbias':>9}")
    for label, m in table.items():
        print(f"{label:<24}{m['hr@10']:>8.3f}{m['ndcg@10']:>9.3f}{m['mrr']:>8.3f}{m['coverage@10']:>8.3f}{m['popularity_bias@10']:>9.3f}")
    iv = test["intervals"]["next_item"]
    print(f"model - {iv['baseline']} NDCG@10: {iv['delta']:+.3f} [{iv['low']:+.3f}, {iv['high']:+.3f}] -> {iv['verdict']}")
    groups = scored["seqs"].customer_id.to_numpy()
    for label in [r for r in rows if r.startswith("recbole_")]:
        b = paired_bootstrap(lambda p, yy: task.score(p, yy)["ndcg@10"], rows["model"], rows[label], y, groups)
        table[label]["model_minus"] = b
        print(f"model - {label} NDCG@10: {b['delta']:+.3f} [{b['low']:+.3f}, {b['high']:+.3f}] -> {b['verdict']}")
    if args.json:
        args.json.write_text(json.dumps({"cpu": name, "cores": cores, "cutoff": args.cutoff, "n_test": n_labelled,
                                         "n_items": n_items, "overrides": overrides, "table": table,
                                         "interval": iv, "wall_seconds": wall}, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
