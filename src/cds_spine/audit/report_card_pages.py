"""Report cards as a quality team hands them out: HTML (an index, and one page per clinician) and a PDF with one
A4 page per clinician. Both draw the same ReportCards; neither computes anything."""
from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path

from fpdf import FPDF
from jinja2 import Environment, FileSystemLoader, select_autoescape

from .report_cards import ReportCard, ReportCards

PAGES = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                    autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)
INK, MUTED, BLUE, RED = (27, 36, 48), (91, 102, 117), (47, 111, 179), (185, 28, 28)
MISSED_LINE = 10.0
"""Millimetres a missed order may take (its row and its wrapped components): a page holds no line it cannot."""


def pct(rate: float | None) -> str:
    return "-" if rate is None else f"{rate * 100:.0f} %"


def html(found: ReportCards, cards: tuple[ReportCard, ...] | None = None,
         link: Callable[[ReportCard], str] | None = None, nonce: str | None = None) -> str:
    """The index, and `cards` (default: every card) below it; `link` is where the index sends each clinician."""
    return PAGES.get_template("report_cards.html").render(
        found=found, cards=found.cards if cards is None else cards, pct=pct,
        link=link or (lambda card: f"#{card.slug}"), nonce=nonce or secrets.token_urlsafe(16))


def write_html(found: ReportCards, out: Path) -> list[Path]:
    """index.html (every clinician, linking to their page) and one <slug>.html per clinician."""
    written = [out / "index.html"]
    written[0].write_text(html(found, (), lambda card: f"{card.slug}.html"), encoding="utf-8")
    for card in found.cards:
        path = out / f"{card.slug}.html"
        path.write_text(html(found, (card,), lambda other: f"{other.slug}.html"), encoding="utf-8")
        written.append(path)
    return written


def _text(value: str) -> str:
    """The PDF's core fonts write Latin-1: other characters are shown as '?' (the HTML shows them all)."""
    return value.encode("latin-1", "replace").decode("latin-1")


class _Card(FPDF):
    def heading(self, text: str, size: float = 11) -> None:
        self.set_font("Helvetica", "B", size)
        self.set_text_color(*INK)
        self.cell(0, 7, _text(text), new_x="LMARGIN", new_y="NEXT")

    def muted(self, text: str) -> None:
        """A line of small grey text, wrapped when it does not fit (fpdf's wrapping measures the line again for
        each character: a report card of 115,000 missed orders took 71 s to draw, almost all of it wrapping lines
        that fit)."""
        self.set_font("Helvetica", "", 8.5)
        self.set_text_color(*MUTED)
        shown = _text(text)
        if self.get_string_width(shown) + 2 * self.c_margin <= self.epw:
            self.cell(0, 4.5, shown, new_x="LMARGIN", new_y="NEXT")
        else:
            self.multi_cell(0, 4.5, shown, new_x="LMARGIN", new_y="NEXT")

    def row(self, cells: list[str], widths: list[float], bold: bool = False, colour: tuple[int, int, int] = INK) -> None:
        self.set_font("Helvetica", "B" if bold else "", 8.5)
        self.set_text_color(*colour)
        for text, width in zip(cells, widths, strict=True):
            self.cell(width, 5.2, _text(text)[:int(width * 0.6)], border="B")
        self.ln()


def _page(pdf: _Card, found: ReportCards, card: ReportCard) -> None:
    pdf.add_page()
    pdf.heading("Spine pathway report card", 14)
    pdf.heading(card.label, 12)
    previous = found.previous_period
    pdf.muted(f"{card.orders} orders ({card.by_kind['esi']} ESI, {card.by_kind['regenerative']} regenerative injection, "
              f"{card.by_kind['surgery']} surgery), {found.period['since']} to {found.period['until']}."
              f" Target {found.target * 100:.0f} %."
              + (f" Previous period {previous['since']} to {previous['until']}." if previous["since"] else "")
              + (" Patients by record id." if found.patients_plain else " Patients by keyed hash only."))
    pdf.ln(2)
    pdf.heading("Adherence")
    widths = [76.0, 30.0, 26.0, 28.0, 20.0]
    pdf.row(["Measure component", "You", "Previous period", "Site median", "Target"], widths, bold=True)
    for line in card.components:
        below = line.rate is not None and line.rate < found.target
        pdf.row([line.title, f"{pct(line.rate)} ({line.numerator}/{line.scored})", pct(line.previous),
                 pct(line.site_median) if found.median_shown else "one clinician",
                 f"{found.target * 100:.0f} %"], widths, colour=RED if below else INK)
    pdf.ln(2)
    pdf.heading("By month (overall adherence)")
    _trend(pdf, card, found.target)
    supported = f", {pct(card.supported_share)} with a reason the guideline supports" if card.supported_share is not None else ""
    pdf.heading(f"Overrides: {card.overrides}{supported}")
    for reason in card.reasons[:6]:
        flag = {True: "supported", False: "not a guideline exception", None: "free text or none"}[reason.supported]
        pdf.row([reason.display, str(reason.count), flag], [110.0, 20.0, 50.0])
    for comment in card.comments:
        pdf.muted(f'"{comment}"')
    pdf.ln(2)
    pdf.heading(f"Orders that missed the pathway: {card.missed_total}")
    widths = [40.0, 24.0, 116.0]
    header = ["Patient" if found.patients_plain else "Patient (hash)", "Date", "Order"]
    if card.missed:
        pdf.row(header, widths, bold=True)
    for missed in card.missed:  # every one, on further pages; the components it missed in words, never cut
        if pdf.get_y() > pdf.h - pdf.b_margin - 2 * MISSED_LINE:
            pdf.add_page()
            pdf.heading(f"{card.label}: orders that missed the pathway (continued)")
            pdf.row(header, widths, bold=True)
        pdf.row([missed.patient if found.patients_plain else missed.patient[:16], missed.day,
                 f"{missed.kind} {missed.region}"], widths)
        if missed.components:
            pdf.muted(f"    not met: {'; '.join(missed.components)}")


def _trend(pdf: _Card, card: ReportCard, target: float) -> None:
    """A bar per month (the overall rate) on a 0-100 % axis, the target as a labelled line; the numbers under each
    bar."""
    months = card.months[-12:]
    left, top, height, width = pdf.l_margin + 10, pdf.get_y() + 2, 26.0, 160.0
    step = width / max(1, len(months))
    pdf.set_draw_color(*MUTED)
    pdf.line(left, top + height, left + width, top + height)
    pdf.line(left, top, left, top + height)
    pdf.set_font("Helvetica", "", 6.5)
    pdf.set_text_color(*MUTED)
    for tick in (0.0, 0.5, 1.0):
        pdf.line(left - 1.2, top + height - tick * height, left, top + height - tick * height)
        pdf.text(left - 9.5, top + height - tick * height + 1, f"{tick * 100:.0f} %")
    for index, month in enumerate(months):
        x = left + index * step + step * 0.2
        bar = (month.rate or 0.0) * height
        pdf.set_fill_color(*(BLUE if (month.rate or 0.0) >= target else RED))
        if bar:
            pdf.rect(x, top + height - bar, step * 0.6, bar, style="F")
        pdf.set_font("Helvetica", "", 6.5)
        pdf.set_text_color(*MUTED)
        pdf.text(x, top + height + 3.5, month.month)
        pdf.text(x, top + height + 6.5, f"{pct(month.rate)}, {month.orders}")
    pdf.set_draw_color(*RED)
    pdf.set_dash_pattern(dash=1.2, gap=1)
    pdf.line(left, top + height - target * height, left + width, top + height - target * height)
    pdf.set_dash_pattern()
    pdf.set_font("Helvetica", "B", 6.5)
    pdf.set_text_color(*RED)
    pdf.text(left + width + 1, top + height - target * height + 1, f"target {target * 100:.0f} %")
    pdf.set_y(top + height + 9)


def pdf_bytes(found: ReportCards) -> bytes:
    """One A4 page per clinician."""
    pdf = _Card(format="A4")
    pdf.set_auto_page_break(False)
    pdf.set_margins(15, 14, 15)
    pdf.set_title("Spine pathway report cards")
    for card in found.cards:
        _page(pdf, found, card)
    if not found.cards:
        pdf.add_page()
        pdf.heading("Spine pathway report cards: no orders in the period")
    return bytes(pdf.output())
