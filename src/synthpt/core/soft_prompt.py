"""The soft prompt P: ``n`` trainable vectors before the input of a frozen LM, and where it starts.

Saved and loaded as a PEFT adapter by :mod:`synthpt.core.saving`.
"""

from __future__ import annotations

import torch

from synthpt.core.errors import fail
from synthpt.core.models import Backbone


def embed_tokens(backbone: Backbone, ids: list[int] | torch.Tensor) -> torch.Tensor:
    """(len(ids), d) float32: what the embedding *module* feeds the model for these tokens.

    Not the rows of ``get_input_embeddings().weight``: Gemma's module multiplies them by √d
    (25.3 at d = 640), so tokens enter its layers ~25× longer than the table's rows.  A soft
    prompt must start where real tokens sit, as PEFT initialises it (from the module's output)."""
    module = backbone.model.get_input_embeddings()
    ids = torch.as_tensor(ids, dtype=torch.long, device=module.weight.device).reshape(1, -1)  # (1, n)
    with torch.no_grad():
        return module(ids)[0].detach().float().clone()  # (n, d)


def init_from_vocab(backbone: Backbone, length: int, seed: int, top_k: int = 5000) -> torch.Tensor:
    """``length`` embeddings of random tokens among the first ``top_k`` ids (Lester et al.).

    Real-token vectors start the prompt inside the region of embedding space the frozen
    model knows, which trains far more stably than random Gaussian vectors."""
    if length < 1:
        raise fail(f"prompt length must be at least 1, got {length}")
    vocab = backbone.model.get_input_embeddings().weight.shape[0]
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, min(top_k, vocab), (length,), generator=gen)
    return embed_tokens(backbone, ids)
