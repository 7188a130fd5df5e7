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


def embedding_scale(backbone: Backbone, n: int = 1000) -> float:
    """How much longer the embedding module makes token vectors than the table's rows: √d on Gemma, 1 elsewhere.

    Adam moves every coordinate by about ``lr`` per step whatever the gradient's size, so a soft
    prompt living among vectors √d times longer moves √d times less relative to them for the same
    ``lr``: Stage 1 with SmolLM2's learning rate barely left its initialisation on Gemma (issue 23).
    Measured on the first ``n`` ids rather than read from a model attribute, so any wrapper that
    rescales (or does not) is handled alike; exactly 1.0 when the module returns the rows as they are."""
    weight = backbone.model.get_input_embeddings().weight
    ids = list(range(min(n, weight.shape[0])))
    table = weight[ids].detach().float().norm(dim=-1).sum().item()
    return embed_tokens(backbone, ids).norm(dim=-1).sum().item() / table if table > 0 else 1.0


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
