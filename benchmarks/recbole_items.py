"""RecBole's SASRec and GRU4Rec on the next-item benchmark's own split; run by
``bench_items_ml100k.py --recbole`` in the benchmark-only environment (never imported by the
package or the tests).

    ~/.cache/journeyformer/recbole-venv/bin/python benchmarks/recbole_items.py SPEC.json OUT.json

SPEC.json (written by bench_items_ml100k.py): ``events`` (the MovieLens events parquet),
``cutoff`` (ISO), ``users`` and ``targets`` (the test users and their next film), ``catalogue``
(the model's item ids: the candidate set), ``epochs``, ``seed``. RecBole trains on every rating
at or before the cutoff except each test user's last one, which is its validation target
(early stopping on NDCG@10); the test rows are the benchmark's own targets, and each user's
history is every rating at or before the cutoff. Scores come from RecBole's
``full_sort_predict``; the films the user rated and those outside the catalogue are masked
(the same candidates as the model), and the top 20 of each user go to OUT.json, to be scored
by the benchmark's own metric code.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import polars as pl
import torch


def write_atomic(folder: Path, events: pl.DataFrame, cutoff: str, users: list, targets: list) -> None:
    cut = pl.lit(cutoff).str.to_datetime(time_zone="UTC")
    hist = events.filter(pl.col("timestamp") <= cut).select(
        pl.col("customer_id").cast(pl.String).alias("user_id:token"),
        pl.col("item_id").cast(pl.String).alias("item_id:token"),
        pl.col("timestamp").dt.epoch("s").cast(pl.Float64).alias("timestamp:float"),
    )
    hist = hist.with_row_index("_r").sort("user_id:token", "timestamp:float", "_r")
    last = hist.group_by("user_id:token").agg(pl.col("_r").last())["_r"]
    valid = hist.filter(pl.col("_r").is_in(last.implode())).drop("_r")
    train = hist.filter(~pl.col("_r").is_in(last.implode())).drop("_r")
    t_cut = float(events.filter(pl.col("timestamp") <= cut)["timestamp"].max().timestamp()) + 1
    test = pl.DataFrame(
        {"user_id:token": [str(u) for u in users], "item_id:token": [str(i) for i in targets],
         "timestamp:float": [t_cut] * len(users)}
    )  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in (("train", train), ("valid", valid), ("test", test)):
        frame.write_csv(folder / f"mlbench.{name}.inter", separator="\t")


def run_model(name: str, data_dir: Path, spec: dict) -> dict[str, list[str]]:
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.model.sequential_recommender import GRU4Rec, SASRec
    from recbole.trainer import Trainer
    from recbole.utils import init_seed

    model_cls = {"SASRec": SASRec, "GRU4Rec": GRU4Rec}[name]
    config = Config(
        model=model_cls,
        dataset="mlbench",
        config_dict={
            "data_path": str(data_dir), "benchmark_filename": ["train", "valid", "test"],
            "load_col": {"inter": ["user_id", "item_id", "timestamp"]}, "MAX_ITEM_LIST_LENGTH": 50,
            "train_neg_sample_args": None, "loss_type": "CE", "epochs": spec["epochs"], "stopping_step": 5,
            "eval_args": {"order": "TO", "mode": "full", "group_by": "user"}, "metrics": ["NDCG"], "topk": [10],
            "valid_metric": "NDCG@10", "seed": spec["seed"], "device": "cpu", "use_gpu": False,
            "show_progress": False, "checkpoint_dir": str(data_dir / "saved"), "train_batch_size": 256,
            "eval_batch_size": 256, "log_wandb": False,
        },
    )  # fmt: skip
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    model = model_cls(config, train_data.dataset).to(config["device"])
    trainer = Trainer(config, model)
    trainer.fit(train_data, valid_data, saved=True, show_progress=False)
    state = torch.load(trainer.saved_model_file, weights_only=False)  # RecBole's own file
    model.load_state_dict(state["state_dict"])
    model.eval()
    catalogue = set(spec["catalogue"])
    tokens = np.asarray(dataset.field2id_token["item_id"], dtype=object)
    outside = torch.tensor([t not in catalogue for t in tokens])
    out: dict[str, list[str]] = {}
    with torch.no_grad():
        for batch in test_data:
            interaction, history, _, _ = batch
            scores = model.full_sort_predict(interaction).view(-1, len(tokens))
            scores[:, outside] = -np.inf
            scores[:, 0] = -np.inf
            if history is not None:
                scores[history[0], history[1]] = -np.inf  # the films the user rated
            top = torch.topk(scores, 20, dim=1).indices.numpy()
            users = dataset.id2token("user_id", interaction["user_id"].numpy())
            for u, row in zip(users, top, strict=True):
                out[str(u)] = [str(tokens[i]) for i in row]
    return out


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    events = pl.read_parquet(spec["events"])
    result = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "mlbench"
        write_atomic(folder, events, spec["cutoff"], spec["users"], spec["targets"])
        for name in ("SASRec", "GRU4Rec"):
            result[name] = run_model(name, Path(tmp), spec)
    Path(sys.argv[2]).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
