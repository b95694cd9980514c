"""Dropout whose CPU mask comes from a fast counter-free generator.

``torch.nn.Dropout`` on CPU draws its mask from the Mersenne Twister one element at a time:
for the (B, T, D) activations of the default model that is about 20 ms a call, 5 calls a step,
about a fifth of a CPU training step (`benchmarks/bench_train.py --variants fp32,torch_dropout`
compares the two). This
module draws 16 random bits per element from NumPy's SFC64 in bulk, seeded from torch's own
generator at each call, so a run stays reproducible under ``seed_everything`` and the same
seed gives the same masks. Elsewhere (CUDA, or not training, or ``p == 0``) it is
``torch.nn.Dropout`` itself; it holds no state, so checkpoints and exported graphs are the same.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

_BITS = 16  # per element: p is kept to the nearest 1/65536


class Dropout(nn.Dropout):
    """``nn.Dropout`` with a fast mask on CPU (see the module docstring)."""

    fast = True  # False: torch's own mask everywhere (what the benchmark compares against)

    def forward(self, x: Tensor) -> Tensor:
        if not (self.fast and self.training and 0.0 < self.p < 1.0 and x.device.type == "cpu"):
            return F.dropout(x, self.p, self.training, self.inplace)
        return x.mul(keep_mask(x.shape, self.p).to(x.dtype).mul_(1.0 / (1.0 - self.p)))


def keep_mask(shape: torch.Size | tuple[int, ...], p: float) -> Tensor:
    """A boolean CPU tensor of ``shape``: each element True with probability 1 - ``p``,
    independently; its seed is drawn from torch's default generator."""
    n = int(np.prod(shape))
    seed = int(torch.randint(0, 2**62, (1,), dtype=torch.int64))
    bits = np.random.SFC64(seed).random_raw(-(-n * _BITS // 64)).view(np.uint16)[:n]
    return torch.from_numpy(bits >= round(p * 2**_BITS)).view(shape)
