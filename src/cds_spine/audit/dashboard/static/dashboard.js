"use strict";
// The quality dashboard: every number comes from the /audit endpoints (the same as `cds-spine report`),
// every panel and the CSV follow the filters, and the charts are Chart.js (vendored).
const state = { page: 1, pageSize: 25, charts: {}, me: null, run: "", optionsFor: null };
const $ = (id) => document.getElementById(id);
const FILTERS = ["run", "since", "until", "kind", "region", "clinician", "site", "component", "decision", "overridden"];
// Okabe-Ito: distinguishable with the common colour-vision deficiencies.
const COLOURS = { blue: "#0072B2", orange: "#E69F00", green: "#009E73", vermillion: "#D55E00", sky: "#56B4E9",
  purple: "#CC79A7", grey: "#6b7785" };
const percent = (rate) => (rate === null || rate === undefined ? "–" : `${(rate * 100).toFixed(1)}%`);

// Counts on every chart: each bar or slice is labelled with its count (Chart.js plugin API).
const countLabels = {
  id: "countLabels",
  afterDatasetsDraw(chart) {
    const { ctx } = chart;
    ctx.save();
    ctx.font = "600 12px system-ui, sans-serif";
    ctx.fillStyle = "#1d2733";
    chart.data.datasets.forEach((dataset, index) => {
      const meta = chart.getDatasetMeta(index);
      if (meta.hidden || !dataset.countLabels) return;
      meta.data.forEach((element, i) => {
        const text = dataset.countLabels[i];
        if (text === undefined || text === null || text === "") return;
        const { x, y } = element.tooltipPosition();
        const horizontal = chart.options.indexAxis === "y";
        ctx.textAlign = horizontal ? "left" : "center";
        ctx.textBaseline = "middle";
        if (meta.type === "doughnut") ctx.fillText(text, x, y);
        else if (horizontal && x + 6 + ctx.measureText(String(text)).width > chart.width) {
          // no room after the bar (a long bar, a wide count: "193/250"): inside its end, in white
          ctx.textAlign = "right";
          ctx.fillStyle = "#fff";
          ctx.fillText(text, x - 6, y);
          ctx.fillStyle = "#1d2733";
        } else if (horizontal) ctx.fillText(text, x + 6, y);
        else ctx.fillText(text, x, y - 9);
      });
    });
    ctx.restore();
  },
};

// The target across the whole chart, at its value on the rate axis, labelled: a line through one month's dot is
// no line at all.
const targetLine = {
  id: "targetLine",
  afterDatasetsDraw(chart) {
    const target = chart.options.plugins.targetLine;
    if (!target || target.value === undefined) return;
    const { ctx, chartArea } = chart;
    const y = chart.scales.rate.getPixelForValue(target.value);
    ctx.save();
    ctx.strokeStyle = COLOURS.vermillion;
    ctx.lineWidth = 2;
    ctx.setLineDash([6, 4]);
    ctx.beginPath();
    ctx.moveTo(chartArea.left, y);
    ctx.lineTo(chartArea.right, y);
    ctx.stroke();
    ctx.setLineDash([]);
    ctx.fillStyle = COLOURS.vermillion;
    ctx.font = "600 12px system-ui, sans-serif";
    ctx.textAlign = "right";
    ctx.textBaseline = "bottom";
    ctx.fillText(target.label, chartArea.right, y - 3);
    ctx.restore();
  },
};

function filterParams() {
  const params = new URLSearchParams();
  for (const name of FILTERS) if ($(name).value) params.set(name, $(name).value);
  return params;
}

const SIGNED_OUT = "signed out";

async function getJson(path, params) {
  const response = await fetch(`${path}?${params || ""}`, { credentials: "same-origin" });
  if (response.status === 401) { location.assign("sign-in"); throw new Error(SIGNED_OUT); }
  if (!response.ok) {
    let why = `HTTP ${response.status}`;
    try { why = (await response.json()).issue[0].diagnostics || why; } catch { /* not an OperationOutcome */ }
    throw new Error(why);
  }
  return response.json();
}

function showStatus(text, problem = false) {
  $("status").textContent = text;
  $("status").classList.toggle("problem", problem);
}

// Every load says it is loading (a bulk run of many procedures takes seconds) and, when a request fails, says so
// in place of the numbers, which are then those of the filters before: they are dimmed, never passed off as these.
async function guarded(work) {
  document.body.dataset.loaded = "false";
  showStatus("Loading…");
  try {
    await work();
  } catch (error) {
    if (error.message === SIGNED_OUT) return;
    showStatus(`Not loaded: ${error.message}. The panels below still show the previous filters; try again, ` +
      "or ask the IT team if it persists.", true);
    document.body.dataset.loaded = "error";
    return;
  }
  showStatus("");
  document.body.dataset.loaded = "true";
}

function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function showEmpty(container, empty) {
  container.querySelector(".empty").hidden = !empty;
  const panel = container.querySelector("canvas, table");  // Chart.js styles its canvas: hide by style
  if (panel) panel.style.display = empty ? "none" : "";
  container.dataset.empty = String(empty);
}

function chart(id, config, empty) {
  if (state.charts[id]) state.charts[id].destroy();
  state.charts[id] = new Chart($(id), { ...config, plugins: [countLabels, targetLine], options: { animation: false,
    maintainAspectRatio: false, responsive: true, layout: { padding: { top: 18, right: 30 } }, ...(config.options || {}) } });
  showEmpty($(id).closest("figure"), empty);  // after Chart.js has styled its canvas
}

function renderSummary(summary) {
  $("tile-orders").textContent = summary.orders;
  $("tile-adherence").textContent = percent(summary.adherenceRate);
  $("tile-adherence-counts").textContent = summary.orders
    ? `${summary.adherent} of ${summary.orders - summary.excluded} (${summary.excluded} excluded, red flag); target ${percent(summary.adherenceTarget)}`
    : "";
  $("tile-cards").textContent = summary.cards;
  $("tile-override").textContent = percent(summary.overrideRate);
  $("tile-override-counts").textContent = summary.cards ? `${summary.overridden} of ${summary.cards} cards` : "";
  const counts = [summary.met, summary.notMet, summary.exempt, summary.stopped];
  chart("decision-chart", { type: "doughnut", data: {
    labels: [`Met (${summary.met})`, `Not met (${summary.notMet})`, `Exempt, red flag (${summary.exempt})`,
      `Injection stopped, red flag (${summary.stopped})`],
    datasets: [{ data: counts, countLabels: counts.map((n) => (n ? n : "")),
      backgroundColor: [COLOURS.blue, COLOURS.orange, COLOURS.sky, COLOURS.vermillion] }] },
    options: { plugins: { legend: { position: "bottom" } } } }, summary.orders === 0);
  const components = state.me.components;
  chart("component-chart", { type: "bar", data: {
    labels: components.map((c) => wrapped(c.title, 18)),
    datasets: [{ label: "Adherence (%)", backgroundColor: COLOURS.blue,
      data: components.map((c) => { const r = summary.components[c.id].rate; return r === null ? null : +(r * 100).toFixed(1); }),
      countLabels: components.map((c) => { const n = summary.components[c.id];
        return n.rate === null ? "n/a" : `${n.numerator}/${n.denominator - n.excluded}`; }) }] },
    options: { indexAxis: "y", plugins: { legend: { display: false } },
      scales: { x: { min: 0, max: 100 }, y: { ticks: { autoSkip: false, font: { size: 11 } } } } } },  // every component named, always
    summary.orders === 0);
  renderTraffic(summary.traffic);
}

function renderTraffic(traffic) {
  for (const [id, rows, columns] of [["traffic-calls", traffic.calls, ["service", "status", "count"]],
    ["traffic-feedback", traffic.feedback, ["service", "outcome", "count"]],
    ["traffic-refusals", traffic.refusals, ["service", "status", "reason", "count"]]]) {
    const body = $(id).querySelector("tbody");
    body.replaceChildren(...rows.map((row) => {
      const line = element("tr");
      line.append(...columns.map((column) => element("td", row[column])));
      return line;
    }));
    showEmpty($(id).parentElement, rows.length === 0);
  }
}

function renderTrend(report) {
  const rows = report.rows;
  const target = +(state.me.adherenceTarget * 100).toFixed(1);
  chart("adherence-chart", { type: "bar", data: {
    labels: rows.map((row) => row.group),
    datasets: [
      { type: "line", label: "Adherence (%)", yAxisID: "rate", borderColor: COLOURS.blue, backgroundColor: COLOURS.blue,
        data: rows.map((row) => (row.adherenceRate === null ? null : +(row.adherenceRate * 100).toFixed(1))) },
      { type: "line", label: `Target (${target}%)`, yAxisID: "rate", borderColor: COLOURS.vermillion, borderDash: [6, 4],
        pointRadius: 0, showLine: false, backgroundColor: COLOURS.vermillion, data: rows.map(() => target) },
      { label: "Orders", yAxisID: "orders", backgroundColor: "#c9d7e6", data: rows.map((row) => row.orders),
        countLabels: rows.map((row) => row.orders) },
    ] },
    options: { plugins: { targetLine: { value: target, label: `Target ${target}%` } },
      scales: { rate: { position: "left", min: 0, max: 100, title: { display: true, text: "Adherence (%)" } },
      orders: { position: "right", beginAtZero: true, ticks: { precision: 0 }, grid: { drawOnChartArea: false },
        title: { display: true, text: "Orders" } } } } },
    rows.length === 0);
}

function wrapped(text, width = 24) {
  const lines = [];
  for (const word of text.split(" ")) {
    const last = lines[lines.length - 1];
    if (last !== undefined && (last + " " + word).length <= width) lines[lines.length - 1] = `${last} ${word}`;
    else lines.push(word);
  }
  return lines;
}

function renderReasons(reasons) {
  chart("reasons-chart", { type: "bar", data: {
    labels: reasons.reasons.map((reason) => wrapped(reason.display)),
    datasets: [{ label: "Overridden cards", backgroundColor: COLOURS.orange, data: reasons.reasons.map((r) => r.count),
      countLabels: reasons.reasons.map((r) => r.count) }] },
    options: { indexAxis: "y", plugins: { legend: { display: false } }, scales: { x: { beginAtZero: true, ticks: { precision: 0 } },
      y: { ticks: { autoSkip: false, font: { size: 11 } } } } } },  // every reason named, however small the chart
    reasons.reasons.length === 0);
}

function renderBreakdown(id, report) {
  const table = $(id);
  const body = table.querySelector("tbody");
  body.replaceChildren();
  for (const row of report.rows) {
    const line = element("tr");
    line.append(element("th", row.label), element("td", row.orders), element("td", percent(row.adherenceRate)),
      element("td", percent(row.overrideRate)));
    line.firstChild.scope = "row";
    body.append(line);
  }
  showEmpty(table.parentElement, report.rows.length === 0);
}

function decisionButton(callId, label) {
  const button = element("button", label, "link");
  button.type = "button";
  button.addEventListener("click", () => opened(callId));
  return button;
}

function regionWords(region) {
  return state.me.regionWords[region] || region;
}

function findingWords(code) {
  return state.me.findingWords[code] || code;
}

function componentWords(id) {
  const component = state.me.components.find((item) => item.id === id);
  return component ? component.title : id;
}

function orderLine(order) {
  // What its card led with (the order's decision alone read "met" beside a warning card), then the measure
  const lead = order.lead ? findingWords(order.lead) : "no finding";
  const measure = order.components.overall ? ` (measure ${order.components.overall})` : "";
  return `${order.category} ${regionWords(order.region)}: ${lead}${measure}`;
}

function renderComments(comments) {
  const body = $("comments").querySelector("tbody");
  body.replaceChildren();
  for (const item of comments.items) {
    const row = element("tr");
    const open = element("td");
    open.append(decisionButton(item.decision, "Open"));
    row.append(element("td", item.overriddenAt.replace("T", " ").slice(0, 16)), element("td", item.clinicianLabel),
      element("td", `${item.kind} ${regionWords(item.region)}`), element("td", item.reason || "No reason given"),
      element("td", item.comment || "–"), open);
    body.append(row);
  }
  showEmpty($("comments").parentElement, comments.total === 0);
  $("comments-total").textContent = comments.total > comments.items.length
    ? `Newest ${comments.items.length} of ${comments.total} overrides.` : "";
}

function renderDecisions(list) {
  const body = $("decisions").querySelector("tbody");
  body.replaceChildren();
  for (const item of list.items) {
    const row = element("tr");
    row.dataset.id = item.id;
    row.tabIndex = 0;
    const when = element("td");
    when.append(decisionButton(item.id, item.receivedAt.replace("T", " ").slice(0, 19)));
    const bulk = item.source === "bulk";  // a past procedure: no card was shown, so none was overridden
    row.append(when, element("td", item.clinicianName ? `${item.clinicianName} (${item.clinician})` : item.clinician || "–"),
      element("td", item.site || "–"),
      element("td", item.orders.map(orderLine).join("; ")),
      element("td", bulk ? "–" : item.overridden ? "yes" : "no"),
      element("td", bulk ? "–" : item.cards.map((card) => card.indicator).join(", ")));
    row.addEventListener("keydown", (event) => {
      if (event.target === row && (event.key === "Enter" || event.key === " ")) { event.preventDefault(); opened(item.id); }
    });
    body.append(row);
  }
  showEmpty($("decisions").parentElement, list.total === 0);
  const pages = Math.max(1, Math.ceil(list.total / list.pageSize));
  $("page-label").textContent = `Page ${list.page} of ${pages} (${list.total} ${state.run ? "procedures" : "calls"})`;
  $("previous").disabled = list.page <= 1;
  $("next").disabled = list.page >= pages;
}

function opened(id) {
  showDecision(id).catch((error) => { if (error.message !== SIGNED_OUT) showStatus(`Not opened: ${error.message}.`, true); });
}

async function showDecision(id) {
  state.opener = document.activeElement;
  const item = await getJson(`../audit/decisions/${encodeURIComponent(id)}`,
    state.run ? new URLSearchParams({ run: state.run }) : undefined);
  const bulk = item.source === "bulk";
  $("detail-id").textContent = bulk ? `procedure performed on ${item.performedOn}, evaluated as of ${item.asOf}`
    : `${item.receivedAt} · ${item.service}`;
  const body = $("detail-body");
  const source = bulk ? ` · bulk run ${state.run}` : ` · status ${item.status} · data from ${item.dataSource} · ${item.latencyMs} ms`;
  body.replaceChildren(element("p", `Clinician ${item.clinicianName || ""} ${item.clinician || "–"} · site ${item.site || "–"}` +
    ` · patient ${item.patient || "–"}${source} · knowledge ${item.knowledgeVersion || "–"}`));
  for (const order of item.orders) {
    body.append(element("h3", `${order.category} ${regionWords(order.region)} order ${order.reference || ""}: conservative therapy ${order.decision || "not evaluated"}` +
      (order.conservativeDays === null ? "" : ` (${order.conservativeDays} of ${order.requiredDays} days)`)));
    const components = element("ul");
    for (const [component, outcome] of Object.entries(order.components)) components.append(element("li", `${componentWords(component)}: ${outcome}`));
    const findings = element("ul");
    for (const finding of order.findings) findings.append(element("li", `${findingWords(finding.code)} (${finding.severity}; ${finding.code})`));
    if (!order.findings.length) findings.append(element("li", "none"));
    body.append(element("strong", "Components"), components, element("strong", "Findings"), findings);
    body.append(bulk ? recordCounts(order.record) : evidenceList(order.evidence));
  }
  if (bulk) body.append(element("p", "No card: a bulk run audits procedures already done, from the record as it stood the day before."));
  for (const card of item.cards) {
    body.append(element("h3", card.summary, card.indicator));
    const feedback = element("ul");
    for (const entry of card.feedback) {
      feedback.append(element("li", `${entry.outcome} at ${entry.outcomeTimestamp}` +
        (entry.overrideReason ? ` · reason ${entry.overrideReason}` : "") + (entry.comment ? ` · “${entry.comment}”` : "")));
    }
    if (!card.feedback.length) feedback.append(element("li", "no feedback"));
    body.append(element("strong", "Feedback"), feedback);
  }
  const detail = $("detail");
  detail.hidden = false;
  detail.scrollIntoView({ block: "start" });
  detail.focus();
}

function evidenceList(evidence) {
  const list = element("ul");
  for (const entry of evidence) list.append(element("li", `${entry.label}: ${entry.description}, ${entry.start} to ${entry.end} (${entry.reference})`));
  if (!evidence.length) list.append(element("li", "none"));
  const section = element("div");
  section.append(element("strong", "Evidence"), list);
  return section;
}

function recordCounts(record) {
  // A bulk run keeps what the record held as counts, not the entries themselves
  const list = element("ul");
  for (const [label, count] of [["conservative therapy entries counted", record.conservativeEvidence],
    ["entries not counted", record.notCounted], ["prior injections", record.priorInjections],
    ["diagnoses", record.diagnoses], ["red flags", record.redFlags], ["entries that could not be read", record.unreadable]]) {
    list.append(element("li", `${label}: ${count}`));
  }
  const section = element("div");
  section.append(element("strong", "On record"), list);
  return section;
}

function closeDetail() {
  $("detail").hidden = true;
  if (state.opener && document.body.contains(state.opener)) state.opener.focus();
}

function updateCsvLink() {
  const params = filterParams();
  params.set("by", $("csv-by").value);
  params.set("format", "csv");
  $("csv").href = `../audit/report?${params}`;
  const cards = filterParams();
  $("report-cards").href = `../audit/report-cards?${cards}`;
  cards.set("format", "pdf");
  $("report-cards-pdf").href = `../audit/report-cards?${cards}`;
}

function fillOptions(select, rows) {
  const chosen = select.value;
  const first = select.options[0];
  select.replaceChildren(first, ...rows.map((row) => { const option = element("option", row.label); option.value = row.group; return option; }));
  select.value = rows.some((row) => row.group === chosen) ? chosen : "";
}

// The clinicians and sites to filter by: the live audit's at every load (a clinician's first order shows up); a
// bulk run's once per period, since a run never changes and each of these reports reads every procedure of it.
async function loadOptions() {
  const period = new URLSearchParams();
  for (const name of ["run", "since", "until"]) if ($(name).value) period.set(name, $(name).value);
  if ($("run").value && state.optionsFor === period.toString()) return;
  const [clinicians, sites] = await Promise.all([getJson("../audit/report", `${period}&by=clinician`),
    getJson("../audit/report", `${period}&by=site`)]);
  fillOptions($("clinician"), clinicians.rows);
  fillOptions($("site"), sites.rows);
  state.optionsFor = period.toString();
}

async function load() {
  $("detail").hidden = true;
  const params = filterParams();
  const by = (group) => { const p = new URLSearchParams(params); p.set("by", group); return p; };
  const decisions = new URLSearchParams(params);
  decisions.set("page", state.page);
  decisions.set("pageSize", state.pageSize);
  const comments = new URLSearchParams(params);
  comments.set("pageSize", 20);
  state.run = $("run").value;
  const bulk = Boolean(state.run);  // a bulk run has no calls, cards or overrides to list: its procedures instead
  const none = { total: 0, items: [], page: 1, pageSize: state.pageSize };
  const [summary, months, clinicians, kinds, sites, reasons, commentList, list] = await Promise.all([
    getJson("../audit/summary", params), getJson("../audit/report", by("month")), getJson("../audit/report", by("clinician")),
    getJson("../audit/report", by("order-kind")), getJson("../audit/report", by("site")),
    getJson("../audit/override-reasons", params), bulk ? none : getJson("../audit/override-comments", comments),
    getJson("../audit/decisions", decisions)]);
  $("run-note").hidden = !bulk;
  $("decisions-title").textContent = bulk ? "Procedures audited" : "Decisions";
  for (const section of document.querySelectorAll(".live-only")) section.hidden = bulk;
  renderSummary(summary);
  renderTrend(months);
  renderReasons(reasons);
  renderBreakdown("by-clinician", clinicians);
  renderBreakdown("by-kind", kinds);
  renderBreakdown("by-site", sites);
  renderComments(commentList);
  renderDecisions(list);
  updateCsvLink();
  const period = `${$("since").value || "the start"} to ${$("until").value || "today"}`;
  const active = FILTERS.filter((name) => !["since", "until"].includes(name) && $(name).value)
    .map((name) => `${name} ${$(name).selectedOptions[0].textContent}`);
  $("print-title").textContent = `Spine pathway adherence, ${period}${active.length ? `; ${active.join(", ")}` : ""}.`;
}

async function start() {
  state.me = await getJson("../audit/me");
  $("who").textContent = `${state.me.name} (${state.me.role})`;
  for (const region of state.me.regions) { const option = element("option", region.label); option.value = region.code; $("region").append(option); }
  for (const c of state.me.components) { const option = element("option", c.title); option.value = c.id; $("component").append(option); }
  for (const run of (await getJson("../audit/bulk-runs")).runs) {
    const option = element("option", `bulk run ${run.id}: ${run.period.since} to ${run.period.until}, ${run.procedures} procedures`);
    option.value = run.id;
    $("run").append(option);
  }
  await loadOptions();
  await load();
}

async function reload() {
  state.page = 1;
  await loadOptions();
  await load();
}

$("filters").addEventListener("submit", (event) => { event.preventDefault(); guarded(reload); });
$("filters").addEventListener("reset", () => { document.body.dataset.loaded = "false"; setTimeout(() => guarded(reload)); });
$("csv-by").addEventListener("change", updateCsvLink);
$("previous").addEventListener("click", () => { state.page -= 1; guarded(load); });
$("next").addEventListener("click", () => { state.page += 1; guarded(load); });
$("detail-close").addEventListener("click", closeDetail);
$("print").addEventListener("click", () => window.print());
document.addEventListener("keydown", (event) => { if (event.key === "Escape" && !$("detail").hidden) closeDetail(); });
guarded(start);
