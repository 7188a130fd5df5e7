"""Methods built from a data strategy: PT, Ours, the data strategies of Table 2 and the ablations of Table 3.

Names: ``<strategy>@<generator>``, where the generator is ``fewgen`` (FewGen's generator
tuning) or ``dawgen`` (distribution-aligned weighted generator tuning), both run by the
pipeline (Stages 1-2, cached and shared across methods).

=====================  =======================  ===========================================
name                   strategy                 meaning
=====================  =======================  ===========================================
pt                     real                     Prompt Tuning on the few-shot data only
ours                   paired + surgery         DawGen data, paired batches, gradient surgery
real+syn@G             mixed                    one batch from real ∪ synthetic
real+syn+ls@G          mixed, LS 0.1 on syn     ... with label smoothing of synthetic targets
real->syn@G            real-then-syn            real first, then synthetic
syn->real@G            syn-then-real            synthetic first, then real
(real,syn)@G           paired                   a real and a synthetic batch per step, summed
syn@G                  syn                      synthetic only (ablation: without real data)
ours@fewgen            paired + surgery         ablation: FewGen's generator instead of DawGen
ours-no-gs             paired                   ablation: without gradient surgery (= (real,syn)@dawgen)
ours-no-real           syn                      ablation: without real data (= syn@dawgen)
pt+fewgen-published    paired + surgery         FewGen's published synthetic set (../shared/data)
pt+gold                paired + surgery         oracle: held-out gold rows of the training pool
                                                instead of synthetic ones (as many per label)
pt+gold-shuffled       paired + surgery         the oracle's control: the same gold rows with
                                                their labels shuffled (text without labels)
ours+judge             paired + surgery         Ours on the DawGen rows the few-shot PT prompt
                                                labels as their own (balanced over labels)
ours-shuffled          paired + surgery         Ours' control: the same DawGen rows with their
                                                labels shuffled (generated text without labels)
=====================  =======================  ===========================================
"""

from __future__ import annotations

from synthpt.methods import register
from synthpt.methods.base import PromptTuningMethod

GENERATORS = {"fewgen": "FewGen", "dawgen": "DawGen"}

register(PromptTuningMethod("pt", "Prompt Tuning", "prompt tuning on the few-shot real data", strategy="real"))
register(PromptTuningMethod("ours", "Ours", "DawGen synthetic data + paired prompt tuning with gradient surgery",
                            strategy="paired", gradient_surgery=True, synthetic="dawgen"))

_STRATEGIES = [  # (name, display, trainer strategy, gradient surgery, PT knobs)
    ("real+syn", "Real+Syn", "mixed", False, {}),
    ("real+syn+ls", "Real+Syn w/ LS", "mixed", False, {"label_smoothing": 0.1}),
    ("real->syn", "Real→Syn", "real-then-syn", False, {}),
    ("syn->real", "Syn→Real", "syn-then-real", False, {}),
    ("(real,syn)", "(Real, Syn)", "paired", False, {}),
    ("syn", "Syn only", "syn", False, {}),
]
for _gen, _gdisp in GENERATORS.items():
    for _name, _disp, _strategy, _gs, _knobs in _STRATEGIES:
        register(PromptTuningMethod(f"{_name}@{_gen}", f"{_disp} ({_gdisp})", f"strategy {_strategy} on {_gdisp} data",
                                    strategy=_strategy, gradient_surgery=_gs, synthetic=_gen, pt_knobs=_knobs))

# Ablations (Table 3), named as in the paper.
register(PromptTuningMethod("ours@fewgen", "Ours w/ FewGen generator", "ablation: FewGen generator instead of DawGen",
                            strategy="paired", gradient_surgery=True, synthetic="fewgen"))
register(PromptTuningMethod("ours-no-gs", "Ours w/o gradient surgery", "ablation: paired batches, no surgery",
                            strategy="paired", gradient_surgery=False, synthetic="dawgen"))
register(PromptTuningMethod("ours-no-real", "Ours w/o real data", "ablation: DawGen synthetic data only",
                            strategy="syn", synthetic="dawgen"))
register(PromptTuningMethod("pt+fewgen-published", "PT + FewGen data (published)",
                            "paired + gradient surgery on FewGen's published synthetic set",
                            strategy="paired", gradient_surgery=True, synthetic="published"))
register(PromptTuningMethod("pt+gold", "PT + held-out gold rows (oracle)",
                            "paired + gradient surgery on gold training rows outside the split, as many per "
                            "label as the generator writes: what a perfect generator could add",
                            strategy="paired", gradient_surgery=True, synthetic="heldout"))
register(PromptTuningMethod("pt+gold-shuffled", "PT + shuffled gold (control)",
                            "the oracle's rows with their labels permuted: what in-domain text is worth "
                            "without correct labels (oracle − this = the labels' share of its gain)",
                            strategy="paired", gradient_surgery=True, synthetic="heldout-shuffled"))
register(PromptTuningMethod("ours+judge", "Ours, PT-judged rows",
                            "Ours on the DawGen rows that prompt tuning on the few-shot rows labels as the label "
                            "they were generated for (balanced over labels): no labels beyond the few shots",
                            strategy="paired", gradient_surgery=True, synthetic="dawgen", judge="pt"))
register(PromptTuningMethod("ours-shuffled", "Ours, shuffled labels (control)",
                            "Ours' DawGen rows with their labels permuted: what the generated text is worth without "
                            "its labels (Ours − this = the generated labels' share of Ours' gain)",
                            strategy="paired", gradient_surgery=True, synthetic="dawgen", labels="shuffled"))
