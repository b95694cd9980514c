"""What the README (and the docs) tell a user to type, checked against what the package does.

Fast: every ``make`` target the pages name exists in the Makefile, every ``journeyformer``
command they name is a command, and every ``journeyformer`` line of the README composes its
config with the overrides as written, each override landing where it says.

Slow: the README's quick start run as a user would, subprocesses in an empty directory
(generate-data -> train -> export -> predict -> evaluate, each line as the README writes it
plus a smaller population and one epoch), then its Python snippet; their outputs are checked.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf
from support import CONFIG_DIR

from journeyformer.cli import COMMANDS

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
BIN = Path(sys.executable).parent
N_CUSTOMERS = 400  # a few hundred: seconds per command
SMALL = [f"data.synthetic.n_customers={N_CUSTOMERS}"]


def blocks(page: Path, language: str) -> list[str]:
    """The page's fenced code blocks in ``language``."""
    return re.findall(rf"^```{language}\n(.*?)^```", page.read_text(), re.MULTILINE | re.DOTALL)


def shell_lines(page: Path) -> list[str]:
    """Commands of the page's bash blocks: continuation lines joined, comments dropped."""
    lines = []
    for block in blocks(page, "bash"):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0].strip()
            if line and not line.startswith("#"):
                lines.append(line)
    return lines


def readme_commands() -> list[list[str]]:
    """The README's ``journeyformer <command> <overrides>`` lines, as argument lists."""
    return [shlex.split(line)[1:] for line in shell_lines(README) if line.startswith("journeyformer ")]


def make_targets() -> set[str]:
    return set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.MULTILINE))


def make_calls(page: Path) -> list[str]:
    """``make ...`` as the page writes it: lines of its bash blocks and inline code spans."""
    spans = re.findall(r"`(make [^`]+)`", page.read_text())
    return [line for line in shell_lines(page) if line.startswith("make ")] + spans


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_make_target_and_command_named_exists(page: Path) -> None:
    named = set()
    for call in make_calls(page):  # make [VAR=value ...] target [ARGS=...]
        named |= {t for t in shlex.split(call)[1:] if "=" not in t and not t.startswith("-")}
    assert named <= make_targets(), f"{page.name} names make targets {sorted(named - make_targets())}"
    text = "\n".join(shell_lines(page))
    commands = set(re.findall(r"\bjourneyformer ([a-z][\w-]+)", text))
    assert commands <= set(COMMANDS), f"{page.name} names commands {sorted(commands - set(COMMANDS))}"


def test_the_readme_names_the_commands_of_a_first_result() -> None:
    assert [args[0] for args in readme_commands()][:5] == ["generate-data", "train", "export", "predict", "evaluate"]
    assert {"train", "test", "test-fast", "docs"} <= {
        line.split()[1] for line in shell_lines(README) if line.startswith("make ")
    }


def composed(command: str, overrides: list[str]) -> DictConfig:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name=COMMANDS[command][0], overrides=overrides)


def as_written(value: str) -> object:
    """An override's value as Hydra reads it: [a,b] a list, anything else a string."""
    if value.startswith("[") and value.endswith("]"):
        return [v.strip() for v in value[1:-1].split(",") if v.strip()]
    return value


@pytest.mark.parametrize("args", readme_commands(), ids=lambda a: " ".join(a)[:60])
def test_every_readme_command_composes_as_written(args: list[str]) -> None:
    command, overrides = args[0], [a for a in args[1:] if not a.startswith("-")]
    cfg = composed(command, overrides)
    for override in overrides:
        key, _, value = override.partition("=")
        node = OmegaConf.select(cfg, key, throw_on_missing=False)
        if isinstance(node, DictConfig):  # a group option: model=tiny, data=events
            assert (ROOT / "configs" / key / f"{value}.yaml").is_file(), override
            continue
        got = OmegaConf.to_container(node) if OmegaConf.is_list(node) else node
        want = as_written(value)
        assert (got if isinstance(want, list) else str(got)) == want, f"{override}: the config holds {got!r}"


def journeyformer(args: list[str], cwd: Path) -> str:
    """Run ``journeyformer <args>`` in ``cwd``; its stdout (a failure shows both streams)."""
    proc = subprocess.run(
        [str(BIN / "journeyformer"), *args], cwd=cwd, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, f"journeyformer {' '.join(args)}:\n{proc.stdout}\n{proc.stderr[-4000:]}"
    return proc.stdout


@pytest.mark.slow
def test_readme_quick_start_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    generate, train, export, predict, evaluate = readme_commands()[:5]
    journeyformer([*generate, *SMALL], tmp_path)
    generated = tmp_path / f"data/generated/synthetic_n{N_CUSTOMERS}_s0/events.parquet"
    assert pl.scan_parquet(generated).select(pl.col("customer_id").n_unique()).collect().item() == N_CUSTOMERS
    shutil.copy(generated, tmp_path / "events.parquet")  # the README's data.path=events.parquet

    out = journeyformer([*train, *SMALL, "labels.cutoffs.sparse=warn"], tmp_path)
    run = tmp_path / "checkpoints/tiny_h30_s42"
    manifest = json.loads((run / "run.json").read_text())
    assert (run / manifest["best_checkpoint"]).is_file() and manifest["best_checkpoint"] == "best.ckpt"
    assert (run / "last.ckpt").is_file() and (run / "test_metrics.json").is_file()  # as the README lists
    assert "out-of-time test set: " in out and "baselines fitted on the train split" in out
    assert re.search(r"(TIES|BEATS|LOSES)", out), "the table prints a verdict per headline"

    journeyformer(export, tmp_path)
    bundle = run / "bundle"
    spec = json.loads((bundle / "preprocessing.json").read_text())
    assert spec["temperatures"]["churn"] == pytest.approx(manifest["buffers"]["churn_temperature"], rel=1e-6)
    assert json.loads((bundle / "metrics.json").read_text())["verdicts"] == json.loads(
        (run / manifest["metrics"]).read_text()
    )["verdicts"]

    journeyformer(predict, tmp_path)
    predictions = pl.read_parquet(tmp_path / "predictions.parquet")
    assert predictions.height > 0 and predictions["churn_probability"].is_between(0, 1).all()
    assert (tmp_path / "predictions.rejects.parquet").is_file()  # the README's rejects and manifest
    published = json.loads((tmp_path / "predictions.manifest.json").read_text())
    assert "predictions.parquet" in json.dumps(published)

    out = journeyformer(evaluate, tmp_path)
    assert "evaluation input events.parquet: " in out and "baselines fitted on the same input" in out
    metrics = json.loads((bundle / "report/metrics.json").read_text())
    assert (bundle / "report/report.html").is_file() and metrics["n"] > 0
    assert set(metrics["model"]) == set(spec["tasks"]) - {t for t, w in spec["tasks"].items() if not w}

    # The README's Python snippet, run as written in the same directory: the job's numbers.
    (snippet,) = blocks(README, "python")
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(snippet, scope)
    frame = scope["frame"]
    assert frame.height > 0 and set(predictions.columns) <= set(frame.columns)
    journeyformer([*predict, "as_of=2025-12-01", "output=at_as_of.parquet"], tmp_path)
    at = pl.read_parquet(tmp_path / "at_as_of.parquet").sort("customer_id")
    assert frame.sort("customer_id")["customer_id"].to_list() == at["customer_id"].to_list()
    assert (frame.sort("customer_id")["churn_probability"] - at["churn_probability"]).abs().max() < 1e-5
