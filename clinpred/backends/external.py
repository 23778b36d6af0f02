"""The data-use guard (DESIGN.md rule 6): MIMIC text never leaves the machine by accident.

The PhysioNet credentialed data use agreement forbids sharing the data with third parties. A backend
that sends text to an external API (``sends_text_off_machine = True``) may only receive text from a
protected (MIMIC, not synthetic) cohort when the user has said so explicitly with
``--allow-external-api``. The pipeline calls ``require_external_permission`` before any text is sent,
and stores ``external_api_record`` with the results so every number says whether text left the machine.
"""

from __future__ import annotations

from typing import Any

from clinpred.errors import InputError

FLAG = "--allow-external-api"


def sends_text_off_machine(backend: Any) -> bool:
    """True for backends that declare they send text to an external service."""
    return bool(getattr(backend, "sends_text_off_machine", False))


def require_external_permission(backend: Any, *, protected: bool, allow_external_api: bool) -> None:
    """Raise InputError when an external backend would receive protected (MIMIC) text without the flag."""
    if not sends_text_off_machine(backend) or not protected or allow_external_api:
        return
    name = getattr(backend, "name", type(backend).__name__)
    host = getattr(backend, "host", None)
    where = f" ({host})" if host else ""
    raise InputError(
        f"backend '{name}' sends note text to an external API{where}, and this cohort was read from MIMIC "
        "files (credentialed data). The PhysioNet credentialed data use agreement forbids sharing the data "
        f"with third parties. Pass {FLAG} only if your use of this service is permitted under that "
        "agreement (PhysioNet's guidance on online services such as Azure OpenAI with human review opted "
        "out); otherwise use a local backend (gemma-base, tfidf) or the synthetic cohort."
    )


def external_api_record(backend: Any, *, protected: bool, allow_external_api: bool) -> dict[str, bool]:
    """What the results record about external APIs: the flag, and whether protected text left."""
    off = sends_text_off_machine(backend)
    return {
        "allow_external_api": bool(allow_external_api),
        "sends_text_off_machine": off,
        "protected_text_sent_off_machine": bool(off and protected and allow_external_api),
    }
