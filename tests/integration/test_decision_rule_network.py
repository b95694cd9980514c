"""The network's copy of the stage decision rule's arithmetic, on the default model
(the rule itself: tests/unit/test_decision_rule.py)."""

from __future__ import annotations

import copy

import numpy as np
import torch

from journeyformer.metrics.decision import apply_rule


def test_the_network_applies_the_same_arithmetic(default_net):
    net = copy.deepcopy(default_net)  # the fixture is shared: leave its buffers alone
    task = next(t for t in net.tasks if t.decision_rule)
    k = net.cfg.n_stages
    offset = np.linspace(-1, 1, k).astype(np.float32)
    getattr(net, f"{task.name}_offset").copy_(torch.from_numpy(offset))
    getattr(net, f"{task.name}_carry").fill_(1.5)
    raw = torch.randn(5, k)
    now = torch.tensor([0, 1, 2, k - 1, 0])
    got = net.decide({task.name: raw}, now)[task.name].numpy()
    want = apply_rule(raw.numpy().astype(np.float64), now.numpy(), offset.astype(np.float64), 1.5)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
