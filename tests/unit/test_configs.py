"""Every config composes: every top-level config and every option of every group; unknown keys
in the model, data and labels configs are errors naming the key and the known ones."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf
from support import CONFIG_DIR
from support_tasks import PurchaseInHorizon

from journeyformer.data.preprocessing import check_data_keys, check_label_keys
from journeyformer.errors import ConfigError
from journeyformer.model.config import ModelConfig
from journeyformer.tasks import registry

TOP = {
    "train": [],
    "export": ["checkpoint=x.ckpt"],
    "predict": ["bundle=b", "data.path=e.parquet"],
    "evaluate": ["bundle=b", "data.path=e.parquet"],
    "serve": ["bundle=b"],
    "generate_data": [],
    "search": [],
}
TRAIN_GROUPS = ("data", "labels", "model", "trainer", "callbacks", "logger", "experiment", "debug", "hparams_search", "paths")


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (Path(CONFIG_DIR) / group).glob("*.yaml") if not p.stem.startswith("_"))


def composed(name: str, overrides: list[str]):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name=name, overrides=overrides, return_hydra_config=True)


def resolved(cfg) -> dict:
    """The job's part of the config with every interpolation resolved (hydra's own left out)."""
    job = {k: v for k, v in cfg.items() if k != "hydra"}
    return OmegaConf.to_container(OmegaConf.create(job), resolve=True)


def check_train(cfg) -> None:
    plain = resolved(cfg)
    ModelConfig.check_keys(plain["model"])
    check_data_keys(plain["data"])
    check_label_keys(plain["labels"])


@pytest.mark.parametrize("name", sorted(TOP))
def test_every_top_level_config_composes(name):
    extra = ["paths.output_dir=/tmp/x"] if name in ("train", "generate_data", "search") else []
    cfg = composed(name, [*TOP[name], *extra])
    resolved(cfg)
    # Hydra's run settings come from configs/hydra/default.yaml; only train and search (the
    # study's folder) have a run folder.
    assert cfg.hydra.job.chdir is False
    if name in ("train", "search"):
        assert OmegaConf.select(cfg, "hydra.run.dir") == cfg.run_dir
        check_train(cfg)
    else:
        assert cfg.hydra.run.dir == "." and cfg.hydra.output_subdir is None
    assert cfg.hydra.job_logging.root.handlers == ["console"]  # no <job>.log file


@pytest.mark.parametrize(
    "override", [f"{g}={o}" for g in TRAIN_GROUPS for o in options(g)], ids=str
)
def test_every_option_of_every_group_composes(override):
    # What a user must add to these options: their events.
    needs = {"data=events": ["data.path=/x/events.parquet"]}
    cfg = composed("train", [override, "paths.output_dir=/tmp/x", *needs.get(override, [])])
    check_train(cfg)


def test_model_sizes_share_one_base():
    sizes = {o: resolved(composed("train", [f"model={o}", "paths.output_dir=/tmp/x"]))["model"] for o in options("model")}
    assert {s["name"] for s in sizes.values()} == set(options("model"))
    assert len({str(s["tasks"]) for s in sizes.values()}) == 1  # from model/_common.yaml
    assert sizes["base"]["optimizer"]["lr"] != sizes["small"]["optimizer"]["lr"]


@pytest.mark.parametrize(
    ("override", "check", "message"),
    [
        ("+model.n_layer=4", "model", r"unknown key\(s\) \['n_layer'\]; known: .*'n_layers'"),
        ("+data.max_lenn=3", "data", r"unknown key\(s\) \['max_lenn'\]; known: .*'max_len'"),
        ("+labels.horizn_days=3", "labels", r"unknown key\(s\) \['horizn_days'\]; known: .*'horizon_days'"),
        ("+labels.cutoffs.n_trian=3", "labels", r"labels.cutoffs has unknown key\(s\) \['n_trian'\]"),
    ],
)
def test_unknown_keys_are_errors_naming_the_key_and_the_known_ones(override, check, message):
    plain = resolved(composed("train", [override, "paths.output_dir=/tmp/x"]))
    checker = {"model": ModelConfig.check_keys, "data": check_data_keys, "labels": check_label_keys}
    with pytest.raises(ConfigError, match=message):
        checker[check](plain[check])


def test_churn_only_keeps_churn_alone_and_a_new_head_stays_off():
    """churn_only lists the heads it keeps: a task registered later, even one weighted in
    model.tasks (as if added to model/_common.yaml), has no head there."""
    overrides = ["experiment=churn_only", "paths.output_dir=/tmp/x"]
    model = resolved(composed("train", overrides))["model"]
    assert model["keep_tasks"] == ["churn"]
    ModelConfig.check_keys(model)
    assert {k: w for k, w in ModelConfig.task_weights(model).items() if w} == {"churn": 1.0}
    with registry.registered(PurchaseInHorizon()):
        model = resolved(composed("train", [*overrides, "+model.tasks.purchase=1.0"]))["model"]
        weights = ModelConfig.task_weights(model)
        assert weights["purchase"] == 0.0 and {k for k, w in weights.items() if w} == {"churn"}
        assert ModelConfig.task_weights({**model, "tasks": weights}) == weights  # idempotent
        cfg = ModelConfig(categorical_sizes=(5, 4), n_numeric=1, n_context=1, max_len=4, tasks=weights)
        assert dict(cfg.tasks) == {"churn": 1.0}


def test_keep_tasks_weights_and_errors():
    default = resolved(composed("train", ["paths.output_dir=/tmp/x"]))["model"]
    assert default["keep_tasks"] is None
    assert ModelConfig.task_weights(default) == default["tasks"]  # null: model.tasks as given
    # a kept task keeps its model.tasks weight, or the task's default weight when unnamed
    weights = ModelConfig.task_weights({"tasks": {"churn": 2.0}, "keep_tasks": ["churn", "value"]})
    assert {k: w for k, w in weights.items() if w} == {"churn": 2.0, "value": registry.get("value").default_weight}
    with pytest.raises(ConfigError, match=r"model.keep_tasks names unknown tasks \['chrun'\]; known: "):
        ModelConfig.task_weights({"tasks": {"churn": 1.0}, "keep_tasks": ["chrun"]})


@pytest.mark.parametrize("name", ["predict", "evaluate", "monitor"])
def test_every_command_names_its_events_data_path_and_input_is_the_deprecated_name(name, caplog):
    from journeyformer.config import events_path

    assert events_path(resolved(composed(name, ["bundle=b", "data.path=e.parquet"])), name) == "e.parquet"
    with caplog.at_level("WARNING", logger="journeyformer.config"):
        assert events_path(resolved(composed(name, ["bundle=b", "input=old.parquet"])), name) == "old.parquet"
    assert "input= is deprecated" in caplog.text and "data.path=old.parquet" in caplog.text
    with pytest.raises(ConfigError, match="input=old.parquet and data.path=e.parquet name different events"):
        events_path(resolved(composed(name, ["bundle=b", "input=old.parquet", "data.path=e.parquet"])), name)
    with pytest.raises(ConfigError, match="no events given; add data.path="):
        events_path(resolved(composed(name, ["bundle=b"])), name)


def test_an_override_the_command_does_not_use_is_an_error(tmp_path, monkeypatch):
    """Export reads only the schema settings of data.*: a feature setting fixed by the model
    is refused, not dropped; predict on Ray refuses the local engine's rejects= and scratch=."""
    from journeyformer.inference.job import predict_from_config
    from journeyformer.pipelines import export

    cfg = OmegaConf.create(resolved(composed("export", ["checkpoint=x.ckpt", "data.max_len=12"])))
    with pytest.raises(ConfigError, match=r"data.max_len=12: not used here \(the checkpoint's model fixes"):
        export(cfg)
    import journeyformer.pipelines as pipelines

    monkeypatch.setattr(pipelines, "_run_events", lambda checkpoint: None)  # a run without its events
    cfg = OmegaConf.create(resolved(composed("export", ["checkpoint=x.ckpt", "data.columns.customer_id=user_id"])))
    with pytest.raises(ConfigError, match=r"data.columns=.*not used here \(they apply to the events of data.path"):
        export(cfg)
    ray = resolved(composed("predict", ["bundle=b", "data.path=e.parquet", "engine=ray", "rejects=r.parquet"]))
    with pytest.raises(ConfigError, match=r"rejects='r.parquet': not used here \(engine=ray writes rejects.parquet"):
        predict_from_config(ray)
