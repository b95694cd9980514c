"""A toy fifth task for the registry tests: one class and one label function."""

from __future__ import annotations

import numpy as np
import polars as pl

from journeyformer.data.labels.lifecycle import LabelWindow
from journeyformer.tasks.binary import BinaryTask


class PurchaseInHorizon(BinaryTask):
    """Label: 1 when the customer makes a purchase within the horizon."""

    name = "purchase"
    default_weight = 1.0

    def label(self, window: LabelWindow) -> np.ndarray:
        bought = window.window_sum(pl.col("action").is_in(list(window.cfg.purchase_actions)))
        return (bought > 0).astype(np.float32)
