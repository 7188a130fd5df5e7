"""Every knob of Stage 1 (generator tuning), in one dataclass the CLI builds its flags from."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from synthpt.core.errors import fail
from synthpt.core.knobs import choose, knob, values_of


class GeneratorMode(enum.StrEnum):
    """How the label prompts are tuned (values of ``--mode``)."""

    DAWGEN = "dawgen"  # weighted + discriminative (meta-learned W) + distribution loss
    FEWGEN = "fewgen"  # as dawgen without L_dist
    PLAIN = "plain"  # unweighted prompt tuning of the label prompts


MODES = tuple(values_of(GeneratorMode))


class FirstTexts(enum.StrEnum):
    """Where a pair task's first text comes from in Stage 2 (``--first-texts``; any other value is a
    corpus FILE)."""

    DATA = "data"  # the few-shot train split's first texts, cycled in a seeded order
    GENERATOR = "generator"  # the label prompt writes it from the template's lead-in


@dataclass
class GeneratorConfig:
    """Every knob of Stage 1.

    Learning rates: Q and W use Adam (``lr`` 0.01 is the usual range for prompt vectors with
    Adam; ``meta_lr`` 0.005 moves the zero-initialised weight net slowly so early steps stay
    close to plain tuning).  The lookahead is one SGD step of size ``inner_lr``; since W's
    optimizer is Adam (scale-free), α mainly sets how far the lookahead looks, not W's step.
    """

    mode: GeneratorMode = knob(
        "dawgen",
        'dawgen (weighted + discriminative + distribution loss) | fewgen (no L_dist) | '
        'plain (unweighted)',
    )
    prompt_length: int = knob(20, 'soft prompt tokens per label')
    init_from_label_words: bool = knob(True, "start each label prompt's last tokens at its label word")
    lr: float = knob(0.01, 'Adam learning rate of the label prompts Q')
    lr_relative: bool = knob(
        True, "scale --lr by the embedding module's scale (x25.3 on Gemma 3 270M, which multiplies token "
        "vectors by sqrt(d); x1 on GPT-2, Llama, T5), so one --lr moves Q as far relative to real tokens on every model",
        late=True, was=False)
    # the weight net W and the bi-level step (weighted modes)
    meta_lr: float = knob(0.005, 'Adam learning rate of the weight net W')
    inner_lr: float = knob(1.0, "step size alpha of the differentiable lookahead Q' = Q - alpha grad")
    dist_weight: float = knob(1.0, 'lambda, weight of L_dist in L_DawGen')
    dist_margin: float = knob(1.0, 'hinge margin of L_dist (cosine similarity)')
    weight_hidden: int = knob(64, "hidden width of the weight net's token scorer")
    proj_dim: int = knob(64, "output width of the weight net's projection (L_dist)")
    batch_size: int = knob(8, 'global batch, balanced over labels')
    max_steps: int = knob(200, 'training steps')
    checkpoint_every: int = knob(50, 'write a resumable checkpoint every N steps')
    max_length: int = knob(128, 'maximum tokens of prompt + context + target')
    seed: int = knob(42, 'seed of the prompt initialisation and the batch order')
    skip_nonfinite: bool = knob(False, 'skip a batch whose loss is NaN/inf instead of stopping')

    def validate(self) -> None:
        self.mode = choose(GeneratorMode, self.mode, "generator mode")  # a plain string, also when given a member
        for name in ("prompt_length", "batch_size", "max_steps", "checkpoint_every", "max_length",
                     "weight_hidden", "proj_dim"):
            if getattr(self, name) < 1:
                raise fail(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        for name in ("lr", "meta_lr"):
            if not 0 < getattr(self, name) < math.inf:  # also refuses NaN
                raise fail(f"--{name.replace('_', '-')} must be > 0, got {getattr(self, name)}")
        for name in ("inner_lr", "dist_weight"):
            if not 0 <= getattr(self, name) < math.inf:
                raise fail(f"--{name.replace('_', '-')} must be a finite number >= 0, got {getattr(self, name)}")
        if not math.isfinite(self.dist_margin):
            raise fail(f"--dist-margin must be a finite number, got {self.dist_margin}")
