"""RecBole's SASRec and GRU4Rec on the next-item benchmark's own split; run by
``bench_items_ml100k.py --recbole`` in the benchmark-only environment (never imported by the
package or the tests).

    ~/.cache/journeyformer/recbole-venv/bin/python benchmarks/recbole_items.py SPEC.json OUT.json

SPEC.json (written by bench_items_ml100k.py): ``events`` (the MovieLens events parquet),
``cutoff`` (ISO), ``users`` and ``targets`` (the test users and their next film), ``catalogue``
(the model's item ids: the candidate set), ``epochs``, ``seed``, and the cheap settings
``hidden_size`` (SASRec's hidden and GRU4Rec's embedding and hidden size; RecBole's defaults
64 / 64 and 128 without it), ``max_len`` (``MAX_ITEM_LIST_LENGTH``, 50), ``threads`` (torch
threads, 1) and ``eval_at_end`` (validate once, after the last epoch, instead of every epoch
with early stopping). RecBole trains on every rating
at or before the cutoff except each test user's last one, which is its validation target
(early stopping on NDCG@10); the test rows are the benchmark's own targets after each user's
last 50 ratings at or before the cutoff. Scores come from RecBole's
``full_sort_predict``; the films the user rated and those outside the catalogue are masked
(the same candidates as the model), and the top 20 of each user go to OUT.json, to be scored
by the benchmark's own metric code.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl
import torch


def write_atomic(folder: Path, events: pl.DataFrame, cutoff: str, users: list, targets: list, max_len: int = 50) -> dict[str, set]:
    """RecBole's benchmark files for sequential models (``item_id_list`` pre-built, at most
    ``max_len`` films): train = every rating at or before the cutoff after a user's first, but the
    last; valid = each user's last rating there; test = the benchmark's targets after each
    test user's whole history. Returns user -> the films rated (the mask)."""
    cut = pl.lit(cutoff).str.to_datetime(time_zone="UTC")
    hist = (
        events.filter(pl.col("timestamp") <= cut)
        .with_row_index("_r")
        .sort("customer_id", "timestamp", "_r")
        .group_by("customer_id", maintain_order=True)
        .agg(pl.col("item_id").cast(pl.String), pl.col("timestamp").dt.epoch("s"))
    )
    rows: dict[str, list] = {"train": [], "valid": [], "test": []}
    seen: dict[str, set] = {}
    for user, items, stamps in hist.iter_rows():
        u = str(user)
        seen[u] = set(items)
        for j in range(1, len(items)):
            part = "valid" if j == len(items) - 1 else "train"
            rows[part].append((u, " ".join(items[max(0, j - max_len) : j]), items[j], float(stamps[j])))
    last = {str(u): (" ".join(i[-max_len:]), float(t[-1]) + 1) for u, i, t in hist.iter_rows()}
    for u, target in zip(users, targets, strict=True):
        rows["test"].append((str(u), last[str(u)][0], str(target), last[str(u)][1]))
    folder.mkdir(parents=True, exist_ok=True)
    names = ["user_id:token", "item_id_list:token_seq", "item_id:token", "timestamp:float"]
    for name, data in rows.items():
        frame = pl.DataFrame(data, schema=names, orient="row")
        frame.write_csv(folder / f"mlbench.{name}.inter", separator="\t")
    return seen


def run_model(name: str, data_dir: Path, spec: dict, seen: dict[str, set]) -> dict[str, list[str]]:
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.model.sequential_recommender import GRU4Rec, SASRec
    from recbole.trainer import Trainer
    from recbole.utils import init_seed

    model_cls = {"SASRec": SASRec, "GRU4Rec": GRU4Rec}[name]
    # RecBole 1.2.1's sequential_recommender/sine.py calls torch.autograd.set_detect_anomaly(True)
    # when the package is imported, so every op records a Python stack: an epoch that takes
    # seconds took many minutes. Nothing here needs anomaly detection.
    torch.autograd.set_detect_anomaly(False)
    torch.set_num_threads(int(spec.get("threads", 1)))
    cheap: dict = {}
    if spec.get("hidden_size"):
        h = int(spec["hidden_size"])
        cheap = {"hidden_size": h, "inner_size": 2 * h} if name == "SASRec" else {"embedding_size": h, "hidden_size": h}
    if spec.get("eval_at_end"):
        cheap["eval_step"] = spec["epochs"]  # one validation, after the last epoch
    config = Config(
        model=model_cls,
        dataset="mlbench",
        config_dict={
            "data_path": str(data_dir), "benchmark_filename": ["train", "valid", "test"],
            "load_col": {"inter": ["user_id", "item_id_list", "item_id", "timestamp"]}, "MAX_ITEM_LIST_LENGTH": int(spec.get("max_len", 50)),
            "train_neg_sample_args": None, "loss_type": "CE", "epochs": spec["epochs"], "stopping_step": 5,
            "eval_args": {"order": "TO", "mode": "full", "group_by": "user"}, "metrics": ["NDCG"], "topk": [10],
            "valid_metric": "NDCG@10", "seed": spec["seed"], "device": "cpu", "use_gpu": False,
            "show_progress": False, "checkpoint_dir": str(data_dir / "saved"), "train_batch_size": 256,
            "eval_batch_size": 256, "log_wandb": False, **cheap,
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
            users = dataset.id2token("user_id", interaction["user_id"].numpy())
            position = {t: i for i, t in enumerate(tokens)}
            for r, u in enumerate(users):  # every film the user rated, the first one too
                rated = [position[t] for t in seen.get(str(u), ()) if t in position]
                scores[r, rated] = -np.inf
            top = torch.topk(scores, 20, dim=1).indices.numpy()
            for u, row in zip(users, top, strict=True):
                out[str(u)] = [str(tokens[i]) for i in row]
    return out


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    events = pl.read_parquet(spec["events"])
    result = {}
    out = Path(sys.argv[2]).resolve()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)  # RecBole writes its log_tensorboard/ folder into the working directory
        folder = Path(tmp) / "mlbench"
        seen = write_atomic(folder, events, spec["cutoff"], spec["users"], spec["targets"], int(spec.get("max_len", 50)))
        for name in spec.get("models", ["SASRec", "GRU4Rec"]):
            start = time.perf_counter()
            result[name] = run_model(name, Path(tmp), spec, seen)
            print(f"RecBole {name}: {time.perf_counter() - start:.0f} s", flush=True)
        os.chdir(Path(__file__).resolve().parent)
    out.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
