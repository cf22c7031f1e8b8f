"""Two runs of one export, under a baseline and a candidate version of cards/, side by side: which procedures
change decision or findings (changes.csv), what each version decides and shows per 1,000 procedures, which
findings appear or disappear, each measure component per version (summary.json), and a short report a
clinical informaticist can read (report.md). Nothing of the pathway is here: the runs are bulk runs."""
from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..audit.bulk_rows import BulkRow
from ..audit.formats import spreadsheet_cell
from ..pathway import Knowledge
from ..pathway.findings import ranks

CHANGE_COLUMNS = ["patient", "procedure", "date", "kind", "region", "code", "baselineDecision", "candidateDecision",
                  "baselineFindings", "candidateFindings", "findingsAdded", "findingsRemoved", "baselineCard",
                  "candidateCard"]
PER = 1000


def read_rows(run: Path) -> dict[tuple[str, str], BulkRow]:
    import pyarrow.parquet as pq

    return {(row.patient, row.procedure): row
            for row in BulkRow.from_table(pq.read_table(run / "rows.parquet").to_pydict())}


def card_of(row: BulkRow | None, knowledge: Knowledge) -> str:
    """The finding that leads the procedure's card under this knowledge (the most severe that is not a note),
    or "" when it would show none."""
    if row is None:
        return ""
    wording = knowledge.config.findings
    leading = [code for code in row.findings if code in wording and wording[code].severity != "note"]
    rank = ranks(knowledge, leading)
    return min(leading, key=rank.__getitem__, default="")


@dataclass(frozen=True)
class Side:
    name: str
    knowledge: Knowledge
    rows: Mapping[tuple[str, str], BulkRow]
    run_summary: Mapping[str, Any]

    def totals(self) -> dict[str, Any]:
        procedures = len(self.rows)
        decisions = Counter(row.decision for row in self.rows.values())
        cards = sum(1 for row in self.rows.values() if card_of(row, self.knowledge))

        def per_thousand(count: int) -> float:
            return round(count / procedures * PER, 1) if procedures else 0.0

        return {"knowledgeVersion": self.knowledge.version, "procedures": procedures,
                "decisions": dict(sorted(decisions.items())),
                "decisionsPer1000": {d: per_thousand(n) for d, n in sorted(decisions.items())},
                "cards": cards, "cardsPer1000": per_thousand(cards),
                "components": self.run_summary.get("components", {})}


def _changed(base: BulkRow | None, cand: BulkRow | None) -> bool:
    if base is None or cand is None:
        return True
    return base.decision != cand.decision or set(base.findings) != set(cand.findings)


def compare(baseline: Side, candidate: Side, out: Path) -> dict[str, Any]:
    """Write changes.csv, summary.json and report.md into `out`; the summary."""
    out.mkdir(parents=True, exist_ok=True)
    keys = sorted(set(baseline.rows) | set(candidate.rows))
    appear: Counter[str] = Counter()
    disappear: Counter[str] = Counter()
    moves: Counter[str] = Counter()
    changed = 0
    with (out / "changes.csv").open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(CHANGE_COLUMNS)
        for key in keys:
            base, cand = baseline.rows.get(key), candidate.rows.get(key)
            if not _changed(base, cand):
                continue
            changed += 1
            before, after = set(base.findings if base else ()), set(cand.findings if cand else ())
            appear.update(after - before)
            disappear.update(before - after)
            moves[f"{base.decision if base else '(none)'} -> {cand.decision if cand else '(none)'}"] += 1
            either = cand or base
            assert either is not None
            writer.writerow([spreadsheet_cell(value) for value in (
                either.patient, either.procedure, either.date, either.kind, either.region, either.code,
                base.decision if base else "", cand.decision if cand else "",
                " ".join(base.findings) if base else "", " ".join(cand.findings) if cand else "",
                " ".join(sorted(after - before)), " ".join(sorted(before - after)),
                card_of(base, baseline.knowledge), card_of(cand, candidate.knowledge))])
    summary = {
        "baseline": baseline.totals(), "candidate": candidate.totals(),
        "procedures": len(keys), "changed": changed,
        "onlyIn": {"baseline": len(set(baseline.rows) - set(candidate.rows)),
                   "candidate": len(set(candidate.rows) - set(baseline.rows))},
        "decisionChanges": dict(sorted(moves.items())),
        "findings": {"appear": dict(sorted(appear.items())), "disappear": dict(sorted(disappear.items()))},
        "differences": differences(baseline.knowledge, candidate.knowledge),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    (out / "report.md").write_text(report(summary), encoding="utf-8")
    return summary


def _rate(component: Mapping[str, Any] | None) -> str:
    """The rate with its true numerator and denominator: the orders scored, the excluded ones named apart."""
    if not component or component.get("rate") is None:
        return "-"
    scored = component["denominator"] - component.get("excluded", 0)
    excluded = f"; {component['excluded']} excluded" if component.get("excluded") else ""
    return f"{component['rate'] * 100:.1f} % ({component['numerator']} of {scored}{excluded})"


def _flat(value: Any, path: str = "") -> dict[str, Any]:
    """A configuration as dotted paths to its values (lists kept whole)."""
    if isinstance(value, Mapping):
        return {key: leaf for name, item in value.items()
                for key, leaf in _flat(item, f"{path}.{name}" if path else str(name)).items()}
    return {path: value}


def differences(baseline: Knowledge, candidate: Knowledge) -> list[str]:
    """What differs between the two versions of cards/: each parameter of pathway.yaml (old -> new) and each
    value set whose codes differ (codes added and removed)."""
    old, new = _flat(baseline.config.model_dump(mode="json")), _flat(candidate.config.model_dump(mode="json"))
    found = [f"`{key}`: {old.get(key, '(none)')} -> {new.get(key, '(none)')}"
             for key in sorted(set(old) | set(new)) if old.get(key) != new.get(key)]
    for valueset in sorted(baseline.valueset_ids | candidate.valueset_ids):
        before = set(baseline.valueset_codes.get(valueset, ()))
        after = set(candidate.valueset_codes.get(valueset, ()))
        if before != after:
            found.append(f"value set `{valueset}`: {len(after - before)} codes added, {len(before - after)} removed")
    return found


def report(summary: Mapping[str, Any]) -> str:
    base, cand = summary["baseline"], summary["candidate"]
    lines = [
        "# What the candidate cards/ would have changed",
        "",
        f"Baseline knowledge {base['knowledgeVersion']}, candidate {cand['knowledgeVersion']}, over "
        f"{summary['procedures']:,} procedures of the export.",
        "",
        f"- **{summary['changed']:,} procedures change** decision or findings "
        f"({summary['changed'] / summary['procedures'] * 100 if summary['procedures'] else 0:.1f} %); each is a "
        "row of changes.csv.",
        f"- Cards per 1,000 procedures: {base['cardsPer1000']} -> {cand['cardsPer1000']}.",
    ]
    for move, count in summary["decisionChanges"].items():
        lines.append(f"- Decision {move}: {count:,}.")
    for kind, label in (("appear", "New"), ("disappear", "Gone")):
        for code, count in summary["findings"][kind].items():
            lines.append(f"- {label} finding `{code}`: {count:,} procedures.")
    if summary["onlyIn"]["baseline"] or summary["onlyIn"]["candidate"]:
        lines.append(f"- In the pathway under one version only: {summary['onlyIn']['baseline']:,} baseline, "
                     f"{summary['onlyIn']['candidate']:,} candidate (a code added to or taken from an order value set).")
    lines += ["", "What differs between the two versions of cards/:", ""]
    lines += [f"- {difference}" for difference in summary["differences"]] or ["- nothing"]
    lines += ["", "Rates: orders meeting the component of those scored (orders a red flag excludes are named apart).",
              "", "| measure component | baseline | candidate |", "|---|---|---|"]
    for component in sorted(set(base["components"]) | set(cand["components"])):
        lines.append(f"| {component} | {_rate(base['components'].get(component))} | "
                     f"{_rate(cand['components'].get(component))} |")
    return "\n".join(lines) + "\n"
