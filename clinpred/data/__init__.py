"""Reading MIMIC-III / MIMIC-IV-Note, the synthetic cohort, the Cohort, splits and ICD-9 grouping."""

from clinpred.data.cohort import Cohort
from clinpred.data.load import detect_layout, load_cohort

__all__ = ["Cohort", "detect_layout", "load_cohort"]
