"""Which optional extra a command needs, and a clear error when it is not installed.

The base install (``pip install journeyformer``) scores bundles only; training needs
``[train]`` and the HTML report ``[report]`` (see pyproject.toml). Heavy libraries are imported
lazily where they are used, and :func:`require` is called first so a missing one fails early
with the install command instead of a ``ModuleNotFoundError`` from deep inside the job.
"""

from __future__ import annotations

from importlib.util import find_spec

# extra -> the top-level modules it provides (the first missing one is named in the error)
EXTRAS: dict[str, tuple[str, ...]] = {
    "train": ("torch", "lightning", "torchmetrics", "onnx", "onnxscript"),
    "report": ("matplotlib",),
    "track": ("mlflow",),
    "sweep": ("optuna", "torch", "lightning", "torchmetrics"),  # a search trains: [sweep] includes [train]
    "ray": ("ray",),
    "serve": ("fastapi", "uvicorn", "redis"),
}


class MissingExtraError(ImportError):
    """An optional dependency of the command is not installed."""


def missing(extra: str) -> list[str]:
    """Modules of ``extra`` that cannot be imported here (empty when all are installed)."""
    out = []
    for module in EXTRAS[extra]:
        try:
            found = find_spec(module) is not None
        except ModuleNotFoundError:  # a parent package is missing
            found = False
        if not found:
            out.append(module)
    return out


def require(extra: str, what: str) -> None:
    """Raise :class:`MissingExtraError` naming ``what`` needs and how to install it.

    Example::

        require("report", "journeyformer evaluate (the plots of report.html)")
    """
    gone = missing(extra)
    if gone:
        raise MissingExtraError(
            f"{what} needs {', '.join(gone)}, which this install of journeyformer does not "
            f"have (the base install only scores bundles). Install the extra: "
            f"pip install 'journeyformer[{extra}]'"
        )
