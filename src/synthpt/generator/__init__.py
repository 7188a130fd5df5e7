"""Stages 1 and 2: tune label-conditioned soft prompts on a frozen generator LM (DawGen), then
generate filtered, label-conditioned synthetic data with them."""

from synthpt.generator.generation import GenerationConfig, run_generation
from synthpt.generator.tuning import GeneratorConfig, GeneratorTrainer, WeightNet, run_generator_tuning

__all__ = [
    "GenerationConfig",
    "GeneratorConfig",
    "GeneratorTrainer",
    "WeightNet",
    "run_generation",
    "run_generator_tuning",
]
