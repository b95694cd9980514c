"""The exported model loads and agrees in the oldest onnxruntime we state (OLDEST_ONNXRUNTIME_TESTED).

`make venv` installs that release into <venv>/ort-oldest (no network at test time); a
subprocess puts it first on PYTHONPATH, loads model.onnx and scores the same inputs.
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
import pytest

from journeyformer.export.onnx import OLDEST_ONNXRUNTIME_TESTED, OPSET, random_inputs
from journeyformer.inference.bundle import load_bundle
from journeyformer.inference.session import make_session
from journeyformer.model.config import ModelConfig

ORT_OLDEST = Path(sys.prefix) / "ort-oldest"

RUN = textwrap.dedent(
    """
    import json, sys
    import numpy as np, onnxruntime as ort
    model, inputs, out = sys.argv[1:4]
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    with np.load(inputs) as x:
        feeds = {k: x[k] for k in x.files}
    np.savez(out, **dict(zip(names, session.run(names, feeds))))
    print(json.dumps({"version": ort.__version__}))
    """
)


def test_model_is_saved_at_the_lowest_ir_version(tiny_bundle):
    model = onnx.load(str(tiny_bundle / "model.onnx"))
    assert {o.domain: o.version for o in model.opset_import}[""] == OPSET == 18
    assert model.ir_version == 8  # the IR version of the first ONNX release with opset 18
    spec = load_bundle(tiny_bundle).spec["onnx"]
    assert (spec["opset"], spec["ir_version"]) == (18, 8)


@pytest.mark.slow
def test_oldest_onnxruntime_reproduces_the_outputs(tiny_bundle, tmp_path):
    if not (ORT_OLDEST / "onnxruntime").is_dir():
        message = f"{ORT_OLDEST}: onnxruntime {OLDEST_ONNXRUNTIME_TESTED} missing; run `make venv`"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    bundle = load_bundle(tiny_bundle)
    cfg = ModelConfig(**bundle.spec["model"])
    session = make_session(bundle.model_path(), "cpu")
    for i, (b, t) in enumerate([(1, 1), (7, 5), (33, cfg.max_len)]):
        inputs = random_inputs(cfg, b, t, seed=i)
        np.savez(tmp_path / "in.npz", **inputs)
        env = {**os.environ, "PYTHONPATH": str(ORT_OLDEST)}
        proc = subprocess.run(
            [sys.executable, "-c", RUN, str(bundle.model_path()), str(tmp_path / "in.npz"),
             str(tmp_path / "out.npz")],
            capture_output=True, text=True, env=env, timeout=300,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert json.loads(proc.stdout.strip().splitlines()[-1])["version"] == (
            OLDEST_ONNXRUNTIME_TESTED
        )
        names = list(bundle.output_names)
        new = dict(zip(names, session.run(names, inputs), strict=True))
        with np.load(tmp_path / "out.npz") as old:
            for name in names:
                np.testing.assert_allclose(old[name], new[name], rtol=1e-4, atol=1e-5, err_msg=name)

    # The golden examples, as another runtime checks them: inputs -> outputs within tolerance.
    golden = json.loads((tiny_bundle / "golden.json").read_text())
    dtypes = {i["name"]: i["dtype"] for i in bundle.spec["onnx"]["inputs"]}
    feeds = {k: np.asarray(v, dtype=dtypes[k]) for k, v in golden["inputs"].items()}
    np.savez(tmp_path / "in.npz", **feeds)
    proc = subprocess.run(
        [sys.executable, "-c", RUN, str(bundle.model_path()), str(tmp_path / "in.npz"),
         str(tmp_path / "out.npz")],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ORT_OLDEST)},
        timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    tol = golden["tolerance"]["outputs"]
    with np.load(tmp_path / "out.npz") as old:
        for name, expected in golden["outputs"].items():
            np.testing.assert_allclose(
                old[name], expected, rtol=tol["rtol"], atol=tol["atol"], err_msg=name
            )
