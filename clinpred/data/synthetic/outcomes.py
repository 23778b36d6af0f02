"""Death: a hazard that rises with age, condition burden and severity.

Two places a patient can die: in hospital, at the end of an admission (DEATHTIME, HOSPITAL_EXPIRE_FLAG,
DOD_HOSP), or after a discharge, before the next admission or the end of follow-up (DOD_SSN). The
coefficients are set so that about 13% of admissions end in death and about a quarter of patients
die within a year of their first admission (the targets and their sources are in ``calibration.py``).
Severity carries most of the hazard, and severity is what the early notes show (pressors, lactate,
intubation, GCS, goals-of-care talk, shifted vitals and labs), so the survival task can learn it.
An early, unplanned readmission follows the same burden and severity (``early_readmission_probability``).
"""

from __future__ import annotations

import math

from clinpred.data.synthetic.conditions import BY_KEY


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def acute_load(active: list[str]) -> float:
    """Sum of the active conditions' hazard weights."""
    return sum(BY_KEY[k].hazard for k in active)


def in_hospital_death_probability(age: float, active: list[str], severity: float) -> float:
    """Probability that an admission ends in death."""
    logit = -4.9 + 0.045 * (age - 65.0) + 0.9 * acute_load(active) * severity + 5.0 * severity
    return _sigmoid(logit)


def yearly_death_rate(age: float, chronic: list[str], severity: float) -> float:
    """The post-discharge death rate per year (an exponential hazard until the next admission)."""
    log_rate = -3.7 + 0.04 * (age - 65.0) + 0.35 * acute_load(chronic) + 3.4 * severity
    return math.exp(log_rate)


def early_readmission_probability(chronic: list[str], severity: float, fragility: float) -> float:
    """Probability that a discharge alive is followed by an unplanned readmission within 30 days. It rises
    with the chronic burden, the severity of the stay and its fragility (nonadherence, poor support, new
    oxygen: the discharge concerns its notes mention), all written in that stay's notes, so that the
    readmission task has content to find. Fragility (standard normal per stay) weighs as much as the
    range of severity: in studies of readmission, the social and functional drivers that nurses, case
    managers and discharge planners record predict it at least as well as acuity does."""
    return _sigmoid(-5.6 + 0.5 * acute_load(chronic) + 4.0 * severity + 1.6 * fragility)


def concern_probability(fragility: float) -> float:
    """Probability that one discharge concern applies to a stay of this fragility: about 1 in 100 for a
    stay one deviation below the mean, 1 in 11 at the mean, nearly 1 in 3 one deviation above, so that a
    stay's concerns (what its notes say) follow its fragility (what drives its readmission) closely."""
    return 0.4 * _sigmoid(2.5 * (fragility - 0.5))
