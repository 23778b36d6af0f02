"""ACES task configs for clinpred's MEDS codes, shipped with clinpred: ``--aces inhospital_mortality``."""
