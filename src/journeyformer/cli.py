"""The ``journeyformer`` command: one Hydra app per job, over the configs shipped in the package.

    journeyformer generate-data data.synthetic.n_customers=1000
    journeyformer train model=tiny trainer.max_epochs=1
    journeyformer search hparams_search.n_trials=20 model=tiny   # Optuna; rerun to resume
    journeyformer export checkpoint=checkpoints/<run>/best.ckpt
    journeyformer predict bundle=<dir> data.path=<events> [output=predictions.parquet as_of=...]
    journeyformer evaluate bundle=<dir> data.path=<events>
    journeyformer monitor bundle=<dir> data.path=<events> [as_of=... fail_on_drift=true]
    python -m journeyformer predict --help        # Hydra's help, groups and overrides

Everything after the command is Hydra's (overrides, ``-m``, ``--cfg job``, ``--config-dir``).
The configs are ``journeyformer/configs``: in a checkout a link to the repository's
``configs/``, in a wheel a copy of it, so the command works in any directory. The
``scripts/*.py`` are thin wrappers over :func:`main`.

This module imports no heavy library: each job imports what it needs when it runs, after
checking that the extra providing it is installed (:mod:`journeyformer.extras`), so
``journeyformer predict`` runs on the base install (no torch, lightning or matplotlib).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from omegaconf import DictConfig, OmegaConf

from journeyformer import __version__
from journeyformer.config import plain as _plain
from journeyformer.errors import (
    DEBUG_ENV,
    EXIT_USER_ERROR,
    ConfigError,
    debug_enabled,
    describe,
    user_errors,
)
from journeyformer.extras import MissingExtraError, require
from journeyformer.publish import exit_cleanly_on_signals

F = TypeVar("F", bound=Callable[..., Any])


def entry_point(main: F) -> F:
    """Decorate a script's main function (inside ``@hydra.main``): errors a user can cause
    (:func:`journeyformer.errors.user_errors`) print one line and exit 2, and SIGTERM (what
    schedulers send) becomes a clean exit that removes temporary files.

    Example::

        @hydra.main(version_base="1.3", config_path="../configs", config_name="predict")
        @entry_point
        def main(cfg): ...
    """

    @functools.wraps(main)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with exit_cleanly_on_signals():
            try:
                return main(*args, **kwargs)
            except user_errors() as err:
                if debug_enabled():
                    raise
                print(f"error: {describe(err)}", file=sys.stderr)
                print(f"(set {DEBUG_ENV}=1 to see the traceback)", file=sys.stderr)
                raise SystemExit(EXIT_USER_ERROR) from None

    return wrapper  # type: ignore[return-value]


def config_dir() -> Path:
    """The directory of the Hydra configs (``train.yaml``, ``predict.yaml``, ...)."""
    path = Path(__file__).resolve().parent / "configs"
    if not (path / "train.yaml").is_file():
        raise FileNotFoundError(
            f"{path}: the configs of journeyformer are missing (a broken install?); reinstall "
            "the package, or pass your own with --config-dir <dir>"
        )
    return path


def _from_start(path: Any) -> Path:
    """``path``, a relative one against the directory the command was started from."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import get_original_cwd

    path = Path(str(path))
    if path.is_absolute():
        return path
    return Path(get_original_cwd() if HydraConfig.initialized() else Path.cwd()) / path


def train_job(cfg: DictConfig) -> float | None:
    """Train; returns ``optimized_metric`` (a validation metric) for a sweeper."""
    from journeyformer.pipelines import optimized_value, train

    if cfg.get("hparams_search") is not None:  # the Optuna sweeper plugin is gone
        raise ConfigError("hparams_search is a setting of `journeyformer search` (an Optuna study over train); run: journeyformer search [overrides]")
    result = train(cfg)
    name = cfg.get("optimized_metric")
    if not name or "val" not in result.metrics:  # not evaluated (evaluate=false, rank > 0)
        return None
    return optimized_value(result.metrics, name)


def search_job(cfg: DictConfig) -> float:
    """Optuna study over train (``configs/search.yaml``); returns the best validation value."""
    from journeyformer.search import search

    return search(cfg).best_value


def export_job(cfg: DictConfig) -> None:
    """Checkpoint -> bundle (``configs/export.yaml``)."""
    from journeyformer.pipelines import export

    export(cfg)


def predict_job(cfg: DictConfig) -> None:
    """Events -> predictions.parquet with onnxruntime (``configs/predict.yaml``); no torch."""
    from journeyformer.inference.job import predict_from_config

    predict_from_config(_plain(cfg))  # logs its summary


def evaluate_job(cfg: DictConfig) -> None:
    """Bundle + labelled events -> metrics.json and report.html (``configs/evaluate.yaml``)."""
    from journeyformer.evaluation.render import render_text
    from journeyformer.evaluation.report import evaluate_from_config

    ev, out = evaluate_from_config(_plain(cfg))
    print(render_text(ev.metrics))
    for task, c in ev.metrics.get("calibration", {}).items():
        print(
            f"{task} ECE before/after temperature scaling (T={c['temperature']:.3f}): "
            f"{c['ece_before']:.4f} -> {c['ece_after']:.4f}"
        )
    print(f"report: {out / 'report.html'}")


def monitor_job(cfg: DictConfig) -> None:
    """Bundle + new events -> monitor.json and monitor.html (``configs/monitor.yaml``);
    exits with 3 on drift when ``fail_on_drift``."""
    from journeyformer.monitoring.job import monitor_from_config

    result = monitor_from_config(_plain(cfg))
    print(result.report.summary())
    print(f"monitor: {result.output / 'monitor.html'}")


def experiment_job(cfg: DictConfig) -> dict[str, Any]:
    """Events + exposure log -> experiment.json and experiment.html (configs/campaign_experiment.yaml)."""
    from journeyformer.evaluation.experiment_page import render_text, run_experiment

    result, out = run_experiment(_plain(cfg))
    print(render_text(result))
    print(f"experiment: {out / 'experiment.html'}")
    if result.get("feedback"):  # the labelled exposure log for the next training run
        fb = result["feedback"]
        print(f"feedback: {fb['path']} ({fb['rows']} exposures, {fb['labelled']} labelled)")
    return result


def target_job(cfg: DictConfig) -> Any:
    """Predictions with an uplift column -> whom to contact under a budget (configs/target.yaml)."""
    from journeyformer.inference.targeting import run_targeting

    targets, out = run_targeting(_plain(cfg))
    chosen = targets.filter("contact")
    print(f"{chosen.height} of {targets.height} customers to contact, expected net incremental value "
          f"{float(chosen['net_value'].sum()):.2f}: {out}")  # fmt: skip
    return out


def serve_job(cfg: DictConfig) -> None:
    """The real-time scoring service over a bundle (``configs/serve.yaml``); runs until stopped."""
    from journeyformer.service.job import serve_from_config

    serve_from_config(_plain(cfg))


def generate_data_job(cfg: DictConfig) -> dict[str, Path]:
    """Write the synthetic data set into the folder of ``data.path`` and print a summary.

    A relative ``data.path`` resolves against the directory the command was started from.
    """
    from journeyformer.synthetic.config import SyntheticConfig
    from journeyformer.synthetic.journeys import generate_dataset, summarize

    settings = OmegaConf.to_container(cfg.data.synthetic, resolve=True)
    if not isinstance(settings, dict):
        raise ValueError(f"data.synthetic must be a mapping of settings, got {settings!r}")
    events_path = _from_start(cfg.data.path)
    generated_dir = cfg.data.get("generated_dir")
    if generated_dir:
        generated_dir = _from_start(generated_dir)
    journeys, paths = generate_dataset(
        events_path.resolve(), SyntheticConfig.from_dict(settings), generated_dir
    )
    print(summarize(journeys))
    for name, path in paths.items():
        print(f"{name}: {path}")
    return paths


def build_store_job(cfg: DictConfig) -> Path:
    """Write the sample store of ``data.path`` at ``data.store`` (configs/build_store.yaml)."""
    from journeyformer.tasks import registry
    from journeyformer.training.datamodule import resolve_events_path
    from journeyformer.training.store_build import build_sample_store

    data, labels = _plain(cfg.data), _plain(cfg.labels)
    if not data.get("store"):
        raise ValueError("data.store is not set: give the directory to write, e.g. data.store=data/store")
    store = build_sample_store(
        resolve_events_path(data), data, labels, data["store"], int(cfg.shard_customers), registry.labelers(),
        registry.counted_label(),
    )
    print(f"sample store: {store.path} ({sum(store.samples('train')):,} training samples in "
          f"{store.n_shards('train')} shards)")  # fmt: skip
    return store.path


# command -> (config name, job, the extra it needs beyond the base install)
COMMANDS: dict[str, tuple[str, Callable[[DictConfig], Any], str | None]] = {
    "train": ("train", train_job, "train"),
    "search": ("search", search_job, "sweep"),  # [sweep] includes [train]
    "export": ("export", export_job, "train"),  # torch reads the checkpoint
    "predict": ("predict", predict_job, None),
    "evaluate": ("evaluate", evaluate_job, "report"),
    "monitor": ("monitor", monitor_job, None),  # plots only with [report]
    "experiment": ("campaign_experiment", experiment_job, None),
    "target": ("target", target_job, None),
    "serve": ("serve", serve_job, "serve"),
    "generate-data": ("generate_data", generate_data_job, None),
    "build-store": ("build_store", build_store_job, "train"),  # resolve_events_path lives in training
}

USAGE = f"""usage: journeyformer <command> [hydra overrides and flags]

commands:
  train          train a model (configs/train.yaml)          needs journeyformer[train]
  search         Optuna search over train on a validation metric (search.yaml)  needs journeyformer[sweep]
  export         checkpoint -> ONNX bundle (export.yaml)     needs journeyformer[train]
  predict        score events with a bundle (predict.yaml)   base install
  evaluate       metrics + report.html (evaluate.yaml)       needs journeyformer[report]
  monitor        drift vs the bundle's reference (monitor.yaml)  base install (plots: [report])
  experiment     effects of a campaign with a holdout (campaign_experiment.yaml)  base install
  target         whom to contact by net incremental value under a budget (target.yaml)  base install
  serve          real-time scoring service over a bundle (serve.yaml)  needs journeyformer[serve]
  generate-data  write the synthetic data set (generate_data.yaml)
  build-store    training samples as Parquet shards (build_store.yaml)  needs journeyformer[train]

`journeyformer <command> --help` lists the command's settings; configs: {{config_dir}}
journeyformer {__version__}"""


def run(command: str, args: Sequence[str]) -> Any:
    """Run ``command`` as a Hydra app with command-line ``args``; returns the job's value."""
    import hydra

    config_name, job, extra = COMMANDS[command]
    if extra is not None:
        require(extra, f"journeyformer {command}")  # before Hydra makes its output folder

    def task(cfg: DictConfig) -> Any:
        return job(cfg)

    # Hydra names the job (its log file) after the task function's module: the command's name.
    task.__module__ = f"journeyformer.{config_name}"
    # entry_point: one-line errors (JOURNEYFORMER_DEBUG=1 for the traceback), clean SIGTERM.
    app = hydra.main(version_base="1.3", config_path=str(config_dir()), config_name=config_name)(
        entry_point(task)
    )
    argv = sys.argv
    # Hydra parses sys.argv. A script (scripts/train.py) stays argv[0]: Lightning's DDP launcher
    # starts the other ranks as `python <argv[0]> <args>` (trainer=ddp).
    program = argv[0] if argv and argv[0].endswith(".py") else f"journeyformer {command}"
    sys.argv = [program, *args]
    try:
        return app()
    finally:
        sys.argv = argv


def main(argv: Sequence[str] | None = None) -> Any:
    """Entry point of the ``journeyformer`` command (and of ``python -m journeyformer``)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE.format(config_dir=config_dir()))
        return None
    if args[0] in ("-V", "--version"):
        print(f"journeyformer {__version__}")
        return None
    command = args[0].replace("_", "-")
    if command not in COMMANDS:
        print(USAGE.format(config_dir=config_dir()), file=sys.stderr)
        raise SystemExit(f"journeyformer: unknown command {args[0]!r}; one of {list(COMMANDS)}")
    try:
        return run(command, args[1:])
    except MissingExtraError as err:
        raise SystemExit(f"journeyformer: {err}") from None
