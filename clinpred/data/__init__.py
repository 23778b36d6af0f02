"""Reading MIMIC-III / MIMIC-IV-Note, the synthetic cohort, the Cohort, splits and ICD-9 grouping."""
