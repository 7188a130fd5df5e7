"""Stage 3: data strategies, gradient surgery and the prompt-tuning loop."""

from synthpt.prompt_tuning.recipe import run_prompt_tuning
from synthpt.prompt_tuning.strategies import STRATEGIES, BatchPlan
from synthpt.prompt_tuning.surgery import combine, project_conflicting
from synthpt.prompt_tuning.trainer import PromptTrainer, PromptTrainerConfig

__all__ = ["STRATEGIES", "BatchPlan", "PromptTrainer", "PromptTrainerConfig", "combine", "project_conflicting",
           "run_prompt_tuning"]
