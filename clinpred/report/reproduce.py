"""Do freshly computed results match the committed ones? The check behind `results/` in CI.

CPU training is not bit-exact across machines (thread counts, BLAS kernels, instruction sets change the
order of floating-point sums), so metrics are compared with an absolute tolerance chosen from the
measured run-to-run spread (results/README.md states the measurement); counts and definitions, which
do not depend on floating point, must match exactly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from clinpred.pipeline import RunResults

TOLERANCE = 0.03


def differences(committed: RunResults, fresh: RunResults, *, tolerance: float = TOLERANCE) -> list[str]:
    """Every metric, count or status that differs, one line each; empty when the results reproduce."""
    problems = []
    old = {b.label: b for b in committed.backends}
    new = {b.label: b for b in fresh.backends}
    if sorted(old) != sorted(new):
        return [f"backends differ: committed {sorted(old)}, fresh {sorted(new)}"]
    for label, a in old.items():
        b = new[label]
        if a.status != b.status:
            problems.append(f"{label}: status {a.status} -> {b.status}")
            continue
        for task, ra in a.results.items():
            rb = b.results.get(task)
            if rb is None:
                problems.append(f"{label}/{task}: missing from the fresh run")
                continue
            if ra.counts != rb.counts:
                problems.append(f"{label}/{task}: counts differ")
            for metric, ea in ra.metrics.items():
                eb = rb.metrics.get(metric)
                if eb is None or abs(ea.value - eb.value) > tolerance:
                    fresh_value = "missing" if eb is None else f"{eb.value:.4f}"
                    problems.append(f"{label}/{task}/{metric}: committed {ea.value:.4f}, fresh {fresh_value}")
    return problems
