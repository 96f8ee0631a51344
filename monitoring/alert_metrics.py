"""The metric vocabulary of the early-warning rules and the parsing of their evidence
placeholders: what ``monitoring/config.py`` validates a rule against and what
``monitoring/alerts.py`` evaluates. Kept apart from both so that neither imports the other's
module (``alerts`` imports the config models; the config models import only this).
"""

from __future__ import annotations

import string

from tradecredit.features.catalog import FEATURES

DERIVED_METRICS = ("registry_change_excess_90d", "past_due_60_plus", "past_due_60_plus_share", "pd_12m", "grade", "grade_change",
                   "max_days_past_due", "days_since_credit_event")
ALERT_METRICS = frozenset({f.name for f in FEATURES if f.dtype != "string"} | set(DERIVED_METRICS))


def evidence_names(evidence: str) -> list[str]:
    """The metrics an evidence sentence's {placeholders} name."""
    return [name.split(".")[0].split("[")[0] for _, name, _, _ in string.Formatter().parse(evidence) if name]
