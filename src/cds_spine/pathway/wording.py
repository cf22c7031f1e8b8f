"""Card wording: str.format with plurals, and the longest value each placeholder can take (a summary must fit on
a card whatever it is filled with)."""
from __future__ import annotations

import string
from typing import Any

SUMMARY_LIMIT = 140
# Longest value each placeholder can take when a card is rendered (free text is shortened to this).
PLACEHOLDER_WORST_CASE = {
    "days": "365", "required": "365", "lookback_months": "12", "months": "99", "session": "99", "limit": "99",
    "days_since": "365", "min_days": "365", "condition": "x" * 40, "missing": "365", "count": "99",
    "next": "2099-12-31", "date": "2099-12-31", "before": "100.5 %", "after": "100.5 %",
    "value": "99.9", "scores": "x" * 52, "therapy": "365 days of conservative therapy", "relief": "-999.9", "before_date": "2099-12-31", "after_date": "2099-12-31",
}


class Wording(string.Formatter):
    """str.format for card wording, plus plurals: `{days} {days:day|days}` reads "1 day", "12 days"."""

    def format_field(self, value: Any, format_spec: str) -> str:
        if "|" in format_spec:
            singular, plural = format_spec.split("|", 1)
            return singular if str(value) == "1" else plural
        return str(super().format_field(value, format_spec))


WORDING = Wording()


def fitted(summary: str) -> str:
    """The summary as a card can carry it (under SUMMARY_LIMIT characters): shortened, with an ellipsis, when a
    value was longer than its worst case (a record's own text or number); never an invalid card."""
    return summary if len(summary) < SUMMARY_LIMIT else summary[:SUMMARY_LIMIT - 2].rstrip() + "…"
