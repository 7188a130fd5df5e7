"""Attention of a bfloat16 / float16 generator LM on CPU: its products in float32.

PyTorch's CPU kernel of ``scaled_dot_product_attention`` is slow in bfloat16 at the shapes of
decoding, one query per row against a short KV cache: measured on this machine (1 thread) at 64
rows x 9 heads (3 KV heads) x 60 cached positions, 3.6 ms in bfloat16 against 0.6 ms in float32
(7.3 against 1.2 ms at 120 positions).  On SmolLM2-135M in bfloat16 attention took 28% of a decode
step, more than half the time of all its matmuls.  Its products are a few % of the FLOPs, so
casting q, k and v up and the output back down costs little; it is also more exact (scores,
softmax and sums in float32; only the output is rounded to bfloat16).

:func:`float32_attention` routes a model's attention here through Hugging Face's attention
interface (the same masks as ``sdpa``); float32 models, GPUs and models that do not use ``sdpa``
are left as they are, so float32 generation is unchanged bit for bit."""

from __future__ import annotations

from typing import Any

import torch

NAME = "synthpt_float32_sdpa"


def _forward(module: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
             attention_mask: torch.Tensor | None, **kwargs: Any) -> tuple[torch.Tensor, Any]:
    """``sdpa`` with q, k, v (B, H, T, D) in float32; the output (B, T, H, D) in the query's dtype."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if query.dtype == torch.float32:
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    if attention_mask is not None and attention_mask.dtype != torch.bool:
        attention_mask = attention_mask.float()  # an additive mask: in the dtype of the scores
    out, weights = sdpa_attention_forward(module, query.float(), key.float(), value.float(), attention_mask, **kwargs)
    return out.to(query.dtype), weights


def float32_attention(model: Any) -> bool:
    """Run ``model``'s attention through :func:`_forward` when its weights are half precision on
    CPU and it uses ``sdpa`` (changes the model in place); True when it did."""
    w = next(model.parameters())
    if w.dtype == torch.float32 or w.device.type != "cpu" or getattr(model.config, "_attn_implementation", None) \
            not in ("sdpa", NAME):
        return False
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask
    from transformers.modeling_utils import AttentionInterface

    AttentionInterface.register(NAME, _forward)
    AttentionMaskInterface.register(NAME, sdpa_mask)
    model.set_attn_implementation(NAME)
    return True
