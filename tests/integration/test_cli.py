"""The `journeyformer` command: from a checkout, and from a wheel in a fresh, torch-free venv."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from datetime import datetime, timezone
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from journeyformer.cli import COMMANDS, config_dir
from journeyformer.inference.local import predict_events

AS_OF = datetime(2025, 6, 1, tzinfo=timezone.utc)
REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
HEAVY = ("torch", "lightning", "torchmetrics", "matplotlib", "onnx")


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def test_configs_ship_inside_the_package():
    assert config_dir().resolve() == (REPO / "configs").resolve()  # the link, in a checkout
    for name, _, _ in COMMANDS.values():
        assert (config_dir() / f"{name}.yaml").is_file()


def test_every_command_composes_from_another_directory(tmp_path):
    """`--cfg job` composes each command's config (with its required keys) anywhere."""
    required = {"export": ["checkpoint=x.ckpt"], "predict": ["bundle=b", "data.path=e"],
                "evaluate": ["bundle=b", "data.path=e"], "monitor": ["bundle=b", "data.path=e"]}  # fmt: skip
    for command in COMMANDS:
        out = _run(
            [str(BIN / "journeyformer"), command, "--cfg", "job", *required.get(command, [])],
            tmp_path,
        )
        assert out.strip(), command
    assert "usage: journeyformer" in _run([sys.executable, "-m", "journeyformer"], tmp_path)
    assert not list(tmp_path.iterdir())  # --cfg writes no outputs/ folder


def test_predict_command_equals_the_job_and_imports_no_torch(tiny_bundle, events_path, tmp_path):
    """`python -m journeyformer predict` = predict_events; the scoring path never loads torch
    or matplotlib (checked in the same process that ran the command)."""
    expected = tmp_path / "expected.parquet"
    predict_events(tiny_bundle, events_path, expected, as_of=AS_OF, progress=False)
    script = textwrap.dedent(
        f"""
        import json, sys
        import journeyformer.evaluation.report  # plots (matplotlib) are imported when drawn
        from journeyformer.cli import main
        main(["predict", "bundle={tiny_bundle}", "data.path={events_path}",
              "output=cli.parquet", "as_of={AS_OF.isoformat()}", "progress=false"])
        print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))
        """
    )
    out = _run([sys.executable, "-c", script], tmp_path)
    assert json.loads(out.strip().splitlines()[-1]) == []
    assert_frame_equal(pl.read_parquet(tmp_path / "cli.parquet"), pl.read_parquet(expected))
    assert (tmp_path / "cli.rejects.parquet").exists()


def _base_closure() -> list:
    """Installed distributions the base install needs (journeyformer's requirements without
    extras, recursively): the only packages the fresh venv gets."""
    from importlib.metadata import PackageNotFoundError, distribution

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    seen: dict[str, object] = {}
    todo = list(distribution("journeyformer").requires or [])
    while todo:
        req = Requirement(todo.pop())
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        name = canonicalize_name(req.name)
        if name in seen:
            continue
        try:
            dist = distribution(name)
        except PackageNotFoundError:  # e.g. a platform-only dependency not installed here
            continue
        seen[name] = dist
        todo += [r for r in dist.requires or [] if "extra ==" not in r]
    return list(seen.values())


def _link_base_packages(target: Path) -> list[str]:
    """Symlink each base dependency's top-level files and dist-info into ``target``."""
    names = []
    for dist in _base_closure():
        names.append(dist.metadata["Name"])
        root = Path(dist.locate_file(""))
        tops = {Path(str(f)).parts[0] for f in dist.files or []}
        for top in tops:
            src = root / top
            if top.endswith(".pth") or top.startswith("..") or not src.exists():
                continue
            dst = target / top
            if not dst.exists():
                dst.symlink_to(src)
    return names


@pytest.mark.slow
def test_wheel_predicts_in_a_fresh_torch_free_venv(tiny_bundle, events_path, tmp_path):
    """Build the wheel, install it with no network into a new venv that sees only the base
    dependencies, and run `journeyformer predict` from an unrelated directory."""
    wheels = tmp_path / "wheels"
    _run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "--no-index", "-w", str(wheels), str(REPO)],
        tmp_path,
    )  # fmt: skip
    (wheel,) = wheels.glob("journeyformer-*.whl")
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path)
    py = venv / "bin" / "python"
    _run(
        [sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps",
         "--no-index", str(wheel)],
        tmp_path,
    )  # fmt: skip
    deps = tmp_path / "base_deps"
    deps.mkdir()
    names = _link_base_packages(deps)
    assert {"polars", "numpy", "onnxruntime", "hydra-core"} <= {n.lower() for n in names}
    site = next((venv / "lib").glob("python3*/site-packages"))
    (site / "base_deps.pth").write_text(f"{deps}\n")

    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    probe = f"import importlib.util as u; print([m for m in {HEAVY!r} if u.find_spec(m)])"
    assert _run([str(py), "-c", probe], tmp_path, env).strip() == "[]"

    work = tmp_path / "elsewhere"
    work.mkdir()
    events = pl.read_parquet(events_path)
    few = events.filter(pl.col("customer_id").is_in(events["customer_id"].unique().head(200).to_list()))
    few.write_parquet(work / "events.parquet")
    _run(
        [str(venv / "bin" / "journeyformer"), "predict", f"bundle={tiny_bundle}",
         "data.path=events.parquet", "output=out/predictions.parquet",
         f"as_of={AS_OF.isoformat()}", "progress=false"],
        work, env,
    )  # fmt: skip
    # Hydra leaves nothing in the directory the command ran in (configs/hydra/default.yaml).
    assert not (work / "outputs").exists() and not list(work.glob("*.log"))
    got = pl.read_parquet(work / "out" / "predictions.parquet")
    expected = tmp_path / "expected.parquet"
    predict_events(tiny_bundle, work / "events.parquet", expected, as_of=AS_OF, progress=False)
    assert got.height > 150
    assert_frame_equal(got, pl.read_parquet(expected))

    # A command of another extra says which one to install.
    proc = subprocess.run(
        [str(venv / "bin" / "journeyformer"), "train", "model=tiny"],
        cwd=work, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "pip install 'journeyformer[train]'" in proc.stderr
    assert "Traceback" not in proc.stderr and not (work / "outputs" / "train").exists()
