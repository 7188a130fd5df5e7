"""The paper's baselines as registered methods (rows of the main table).

=============  ===================  ======================================================
name           display              module
=============  ===================  ======================================================
zero-shot      Prompting            :mod:`.zero_shot`  (template + verbalizer, no training)
icl            In-Context           :mod:`.icl`        (balanced, seeded demonstrations)
ft             FT                   :mod:`.finetune`   (classification head, all weights)
pft            Prompt-based FT      :mod:`.finetune`   (LM-BFF, all weights)
pft+sp         PFT + soft prompt    :mod:`.finetune`   (LM-BFF + a trainable soft prompt)
lora           LoRA                 :mod:`.lora`       (PEFT's LoRA with PT's data, verbalizer, steps)
ppt            PPT                  :mod:`.ppt`        (self-supervised prompt pre-training)
spot           SPoT                 :mod:`.spot`       (source-task prompt transfer)
optima         OPTIMA               :mod:`.optima`     (domain-adaptive prompt tuning)
=============  ===================  ======================================================

``pt`` (Prompt Tuning) and ``ours`` live in :mod:`synthpt.methods.data_strategies`.
Every method reports ``trainable_parameters`` in its metrics (0 for zero-shot and ICL, all
weights for FT / PFT, n·d for the prompt methods, the LoRA matrices for LoRA).  Knobs are ``options:`` keys of the
experiment config (see each module's docstring); shared helpers are in :mod:`.common`.
"""
