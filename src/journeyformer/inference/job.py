"""The batch scoring job: ``journeyformer predict`` / ``scripts/predict.py`` with an engine.

``engine=local`` (default; one machine, one predictions file:
:func:`journeyformer.inference.local.predict_events`) or ``engine=ray`` (the machines of a Ray
cluster, a directory of part files: :func:`journeyformer.inference.ray_driver.predict_events_ray`;
``pip install 'journeyformer[ray]'``). Both map one
:class:`journeyformer.inference.scoring.ScoringJob` over the same partitions of customers, so
they give the same customers and the same numbers. Needs no torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from journeyformer.config import events_path, refuse_unused, schema_overrides
from journeyformer.data.events.partitions import CHUNK_CUSTOMERS
from journeyformer.errors import ConfigError
from journeyformer.inference.local import predict_events
from journeyformer.inference.loop import BATCH_SIZE
from journeyformer.inference.result import PredictResult, rejects_path
from journeyformer.tasks.base import TOP_K

__all__ = ["ENGINES", "PredictResult", "predict_events", "predict_from_config", "rejects_path"]

ENGINES = ("local", "ray")


def predict_from_config(cfg: Mapping[str, Any]) -> PredictResult:
    """Score with the settings of ``configs/predict.yaml`` (plain values) on ``engine.name``."""
    events = events_path(cfg, "predict")
    engine = dict(cfg.get("engine") or {"name": "local"})
    name = str(engine.get("name", "local"))
    if name not in ENGINES:
        raise ConfigError(f"engine={name!r} is not an engine; choose one of {list(ENGINES)}")
    if name == "ray":
        refuse_unused({k: cfg.get(k) for k in ("rejects", "scratch")}, (), "",
                      "engine=ray writes rejects.parquet inside the output directory and keeps no scratch partitions")  # fmt: skip
    common = dict(
        as_of=cfg.get("as_of"),
        precision=str(cfg.get("precision", "auto")),
        batch_size=int(cfg.get("batch_size", BATCH_SIZE)),
        chunk_customers=int(cfg.get("chunk_customers", CHUNK_CUSTOMERS)),
        top_k=int(cfg.get("top_k", TOP_K)),
        with_embedding=bool(cfg.get("with_embedding", False)),
        threads=cfg.get("threads"),
        optimization=str(cfg.get("optimization", "basic")),
        graph=str(cfg.get("graph", "auto")),
        parallel=str(cfg.get("parallel", "auto")),
        schema_overrides=schema_overrides(cfg),
        # No `segments` key (`~segments` on the command line): no segment column.
        decide={"segments": cfg.get("segments"), **{k: cfg[k] for k in ("explain", "explain_events", "explain_top") if k in cfg}},
    )
    if name == "ray":
        from journeyformer.inference.ray_driver import predict_events_ray

        return predict_events_ray(
            cfg["bundle"], events, cfg.get("output", "predictions"), engine=engine, **common
        )
    return predict_events(
        cfg["bundle"],
        events,
        cfg.get("output", "predictions.parquet"),
        device=str(cfg.get("device", "cpu")),
        rejects=cfg.get("rejects"),
        progress=bool(cfg.get("progress", True)),
        scratch=cfg.get("scratch"),
        **common,
    )
