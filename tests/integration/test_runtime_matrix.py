"""Every graph file of a bundle on a matrix of onnxruntime releases, against the golden examples.

`make venv` installs each release of RUNTIME_MATRIX into <venv>/ort/<version> (no network at
test time); a subprocess puts one first on PYTHONPATH and runs the graphs. What the matrix shows
must be what every bundle records as ``onnx.min_onnxruntime`` (export/onnx.py MIN_ONNXRUNTIME),
and the predictor on a release where the fused graph is wrong must drop it (or refuse it when
pinned) instead of scoring with it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from journeyformer.export.onnx import MIN_ONNXRUNTIME, OPSET, RUNTIME_MATRIX, random_inputs
from journeyformer.inference.bundle import load_bundle
from journeyformer.inference.session import make_session
from journeyformer.model.config import ModelConfig

ORT_DIR = Path(sys.prefix) / "ort"
NUMPY1 = ORT_DIR / "numpy1"  # onnxruntime < 1.19 was built against NumPy 1

# Runs each graph file on the golden inputs with nothing but onnxruntime and NumPy, as another
# runtime would: "ok", or why not (load error, or how far outside the tolerance).
GOLDEN_RUN = textwrap.dedent(
    """
    import json, sys
    import numpy as np, onnxruntime as ort
    bundle = sys.argv[1]
    golden = json.load(open(f"{bundle}/golden.json"))
    spec = json.load(open(f"{bundle}/preprocessing.json"))
    dtypes = {i["name"]: i["dtype"] for i in spec["onnx"]["inputs"]}
    feeds = {k: np.asarray(v, dtype=dtypes[k]) for k, v in golden["inputs"].items()}
    result = {}
    for file in spec["onnx"]["min_onnxruntime"]:
        int8 = ".int8." in file
        expected = golden["int8_outputs"]["fused" if ".fused." in file else "plain"] if int8 else golden["outputs"]
        tol = golden["tolerance"]["int8_outputs" if int8 else "outputs"]
        try:
            session = ort.InferenceSession(f"{bundle}/{file}", providers=["CPUExecutionProvider"])
            got = dict(zip(expected, session.run(list(expected), feeds)))
        except Exception as exc:
            result[file] = "load: " + str(exc)[:120]
            continue
        excess = max(
            float(np.max(np.abs(got[n] - np.asarray(v)) / (tol["atol"] + tol["rtol"] * np.abs(np.asarray(v)))))
            for n, v in expected.items()
        )
        result[file] = "ok" if excess <= 1 else f"{excess:.3g}x the tolerance"
    print(json.dumps({"version": ort.__version__, "result": result}))
    """
)

# The predictor itself (journeyformer's OnnxRunner) on the runtime first on PYTHONPATH.
PREDICTOR_RUN = textwrap.dedent(
    """
    import json, logging, sys
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    import onnxruntime as ort
    from journeyformer.errors import RuntimeSetupError
    from journeyformer.inference.bundle import load_bundle
    from journeyformer.inference.runner import OnnxRunner
    bundle = load_bundle(sys.argv[1])
    out = {"version": ort.__version__}
    for asked in ("auto", "fused"):
        try:
            runner = OnnxRunner(bundle, precision="auto", graph=asked, threads=1)
            out[asked] = f"{runner.graph} {runner.precision}"
        except RuntimeSetupError as exc:
            out[asked] = "refused: " + str(exc)
    print(json.dumps(out))
    """
)


def _version(v: str) -> tuple[int, ...]:
    return tuple(int(p) for p in v.split(".")[:3])


def _runtime_path(version: str) -> str:
    where = ORT_DIR / version
    if not (where / "onnxruntime").is_dir():
        message = f"{where}: onnxruntime {version} missing; run `make venv`"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    paths = [str(where)] + ([str(NUMPY1)] if _version(version) < (1, 19) else [])
    return os.pathsep.join(paths)


def _run(script: str, args: list[str], pythonpath: str | None) -> subprocess.CompletedProcess:
    env = {**os.environ}
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath
    proc = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_model_is_saved_at_the_lowest_ir_version(tiny_bundle):
    model = onnx.load(str(tiny_bundle / "model.onnx"))
    assert {o.domain: o.version for o in model.opset_import}[""] == OPSET == 18
    assert model.ir_version == 8  # the IR version of the first ONNX release with opset 18
    spec = load_bundle(tiny_bundle).spec["onnx"]
    assert (spec["opset"], spec["ir_version"]) == (18, 8)


def test_bundle_records_the_measured_minimum_of_every_graph(quantized_bundle):
    spec = load_bundle(quantized_bundle).spec["onnx"]
    files = sorted(p.name for p in quantized_bundle.glob("*.onnx"))
    assert files == sorted(MIN_ONNXRUNTIME)  # the quantized export has all four graphs
    assert spec["min_onnxruntime"] == MIN_ONNXRUNTIME


@pytest.mark.slow
@pytest.mark.parametrize("version", [*RUNTIME_MATRIX, "installed"])
def test_every_graph_on_the_runtime_matrix(blended_bundle, version):
    """Each graph (with the per-head LightGBM blend appended, as train.yaml ships it)
    reproduces the golden outputs on the releases at or after its recorded minimum, and fails
    (load error or outside the tolerance) on those before it."""
    assert load_bundle(blended_bundle).spec.get("blend"), "the fixture should ship a blend"
    pythonpath = None if version == "installed" else _runtime_path(version)
    proc = _run(GOLDEN_RUN, [str(blended_bundle)], pythonpath)
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    ran = report["version"]
    assert ran == (ort.__version__ if version == "installed" else version)
    for file, outcome in report["result"].items():
        expected_ok = _version(ran) >= _version(MIN_ONNXRUNTIME[file])
        assert (outcome == "ok") == expected_ok, (ran, file, outcome)


@pytest.mark.slow
def test_oldest_runtime_reproduces_model_onnx_on_random_batches(tiny_bundle, tmp_path):
    """Beyond the golden examples: the plain graph on the oldest release, batches of several
    shapes up to max_len, against the installed onnxruntime."""
    pythonpath = _runtime_path(RUNTIME_MATRIX[0])
    bundle = load_bundle(tiny_bundle)
    cfg = ModelConfig(**bundle.spec["model"])
    session = make_session(bundle.model_path(), "cpu")
    names = list(bundle.output_names)
    script = textwrap.dedent(
        """
        import sys
        import numpy as np, onnxruntime as ort
        model, inputs, out = sys.argv[1:4]
        session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
        names = [o.name for o in session.get_outputs()]
        with np.load(inputs) as x:
            feeds = {k: x[k] for k in x.files}
        np.savez(out, **dict(zip(names, session.run(names, feeds))))
        """
    )
    for i, (b, t) in enumerate([(1, 1), (7, 5), (33, cfg.max_len)]):
        inputs = random_inputs(cfg, b, t, seed=i)
        np.savez(tmp_path / "in.npz", **inputs)
        args = [str(bundle.model_path()), str(tmp_path / "in.npz"), str(tmp_path / "out.npz")]
        _run(script, args, pythonpath)
        new = dict(zip(names, session.run(names, inputs), strict=True))
        with np.load(tmp_path / "out.npz") as old:
            for name in names:
                np.testing.assert_allclose(old[name], new[name], rtol=1e-4, atol=1e-5, err_msg=name)


@pytest.mark.slow
@pytest.mark.parametrize("version", ["1.18.0", "1.20.1"])
def test_predictor_drops_a_wrong_fused_graph_and_refuses_it_pinned(quantized_bundle, version):
    """On releases the pyproject floor allows but whose fused kernels are wrong, the predictor
    scores with a graph that reproduces the golden outputs, says why it dropped the fused ones,
    and refuses graph=fused instead of returning wrong predictions."""
    assert _version(version) < _version(MIN_ONNXRUNTIME["model.fused.onnx"])
    proc = _run(PREDICTOR_RUN, [str(quantized_bundle)], _runtime_path(version))
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["version"] == version
    assert out["auto"].split()[0] == "plain", out
    assert out["fused"].startswith("refused: ") and "golden outputs" in out["fused"], out
    assert f"onnxruntime {version}" in out["fused"] and "1.21.0" in out["fused"]
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("WARNING")]
    dropped = [w for w in warnings if "does not reproduce the bundle's golden outputs" in w]
    assert any("fused fp32 graph" in w and "largest difference" in w for w in dropped), warnings


def test_makefile_installs_the_matrix():
    makefile = (Path(__file__).resolve().parents[2] / "Makefile").read_text()
    line = next(x for x in makefile.splitlines() if x.startswith("ORT_MATRIX :="))
    assert tuple(line.split(":=")[1].split()) == RUNTIME_MATRIX
