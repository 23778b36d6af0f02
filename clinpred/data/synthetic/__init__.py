"""A synthetic ICU cohort in MIMIC-III v1.4 format: the embedded default data set.

Style dominates the text (writers' habits, note-category templates) while a patient's clinical
content is scattered and persists from note to note: the problem that temporal contrastive
fine-tuning solves. Read it back with ``clinpred.data.mimic3.read_mimic3`` like real MIMIC-III.
"""

from clinpred.data.synthetic.generate import SIZES, SynthConfig, generate_cohort

__all__ = ["SIZES", "SynthConfig", "generate_cohort"]
