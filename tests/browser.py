"""Helpers for the page tests: Debian's chromium driven by Playwright, and reading the dashboard's charts and
tables as a user sees them."""
from __future__ import annotations

from cli import PATIENCE

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def painted_pixels(page, canvas_id: str) -> int:
    return page.evaluate("""(id) => {
        const canvas = document.getElementById(id);
        const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
        let painted = 0;
        for (let i = 3; i < data.length; i += 4) if (data[i] > 0) painted++;
        return painted;
    }""", canvas_id)


def chart_data(page, canvas_id: str) -> dict:
    return page.evaluate("""(id) => { const c = Chart.getChart(id);
        return {labels: c.data.labels, data: c.data.datasets.map(d => d.data),
                counts: c.data.datasets.map(d => d.countLabels || null), colours: c.data.datasets.map(d => d.backgroundColor)}; }""",
                         canvas_id)


def rows(page, table: str) -> list[list[str]]:
    return page.evaluate("""(id) => [...document.querySelectorAll(`#${id} tbody tr`)].map(
        r => [...r.children].map(c => c.textContent.trim()))""", table)


def apply(page, **filters) -> None:
    for name, value in filters.items():
        if name in ("since", "until"):
            page.fill(f"#{name}", value)
        else:
            page.select_option(f"#{name}", value)
    page.click("#filters button[type=submit]")
    page.wait_for_selector("body[data-loaded=true]", timeout=PATIENCE * 1000)
