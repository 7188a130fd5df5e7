"""Step 3: the soft prompt, data strategies, gradient surgery and the training loop."""

from synthpt.prompt_tuning.recipe import run_prompt_tuning
from synthpt.prompt_tuning.soft_prompt import init_from_vocab, load_peft_prompt, save_peft_prompt
from synthpt.prompt_tuning.strategies import STRATEGIES, BatchPlan
from synthpt.prompt_tuning.surgery import combine, project_conflicting
from synthpt.prompt_tuning.trainer import PromptTrainer, PromptTuningConfig
from synthpt.prompt_tuning.verbalizer import Encoder, label_logprobs

__all__ = [
    "STRATEGIES", "BatchPlan", "Encoder", "PromptTrainer", "PromptTuningConfig", "combine", "init_from_vocab",
    "label_logprobs", "load_peft_prompt", "project_conflicting", "run_prompt_tuning", "save_peft_prompt",
]
