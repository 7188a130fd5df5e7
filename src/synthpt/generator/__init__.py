"""Stages 1 and 2: tune label-conditioned soft prompts on a frozen generator LM (DawGen), then
generate filtered, label-conditioned synthetic data with them."""

from synthpt.generator.config import GeneratorConfig
from synthpt.generator.generation import GenerationConfig, run_generation
from synthpt.generator.recipe import run_generator_tuning
from synthpt.generator.trainer import GeneratorTrainer, WeightNet

__all__ = [
    "GenerationConfig",
    "GeneratorConfig",
    "GeneratorTrainer",
    "WeightNet",
    "run_generation",
    "run_generator_tuning",
]
