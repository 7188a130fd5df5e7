"""The soft prompt P: ``n`` trainable vectors before the input of a frozen LM, and where it starts.

Saved and loaded as a PEFT adapter by :mod:`synthpt.core.saving`.
"""

from __future__ import annotations

import torch

from synthpt.core.errors import fail
from synthpt.core.models import Backbone


def init_from_vocab(backbone: Backbone, length: int, seed: int, top_k: int = 5000) -> torch.Tensor:
    """``length`` embeddings of random tokens among the first ``top_k`` ids (Lester et al.).

    Real-token vectors start the prompt inside the region of embedding space the frozen
    model knows, which trains far more stably than random Gaussian vectors."""
    if length < 1:
        raise fail(f"prompt length must be at least 1, got {length}")
    table = backbone.model.get_input_embeddings().weight
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, min(top_k, table.shape[0]), (length,), generator=gen)
    return table.detach()[ids.to(table.device)].clone().float()
