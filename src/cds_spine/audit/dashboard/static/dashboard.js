"use strict";
// The quality dashboard: every number comes from the /audit endpoints (the same as `cds-spine report`).
const state = { page: 1, pageSize: 25, charts: {} };
const $ = (id) => document.getElementById(id);
const percent = (rate) => (rate === null || rate === undefined ? "–" : `${(rate * 100).toFixed(1)}%`);

function periodQuery() {
  const params = new URLSearchParams();
  if ($("since").value) params.set("since", $("since").value);
  if ($("until").value) params.set("until", $("until").value);
  return params;
}

async function getJson(path, params) {
  const response = await fetch(`${path}?${params || ""}`, { credentials: "same-origin" });
  if (response.status === 401) { location.assign("sign-in"); throw new Error("signed out"); }
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}

function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function chart(id, config) {
  if (state.charts[id]) state.charts[id].destroy();
  state.charts[id] = new Chart($(id), { ...config, options: { animation: false, maintainAspectRatio: false,
    responsive: true, ...(config.options || {}) } });
}

function renderSummary(summary) {
  $("tile-orders").textContent = summary.orders;
  $("tile-adherence").textContent = percent(summary.adherenceRate);
  $("tile-cards").textContent = summary.cards;
  $("tile-override").textContent = percent(summary.overrideRate);
  chart("decision-chart", { type: "doughnut", data: {
    labels: ["Met", "Not met", "Exempt (red flag)"],
    datasets: [{ data: [summary.met, summary.notMet, summary.exempt], backgroundColor: ["#2e7d4f", "#b3541e", "#1f6fb2"] }] } });
}

function renderMonths(report) {
  chart("adherence-chart", { type: "bar", data: {
    labels: report.rows.map((row) => row.group),
    datasets: [
      { type: "line", label: "Adherence rate (%)", yAxisID: "rate", borderColor: "#2e7d4f", backgroundColor: "#2e7d4f",
        data: report.rows.map((row) => (row.adherenceRate === null ? null : +(row.adherenceRate * 100).toFixed(1))) },
      { label: "Orders", yAxisID: "orders", backgroundColor: "#c9d7e6", data: report.rows.map((row) => row.orders) },
    ] },
    options: { scales: { rate: { position: "left", min: 0, max: 100 }, orders: { position: "right", beginAtZero: true,
      grid: { drawOnChartArea: false } } } } });
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
    datasets: [{ label: "Overridden cards", backgroundColor: "#b3541e", data: reasons.reasons.map((reason) => reason.count) }] },
    options: { indexAxis: "y", plugins: { legend: { display: false } }, scales: { x: { beginAtZero: true, ticks: { precision: 0 } } } } });
}

function renderDecisions(list) {
  const body = $("decisions").querySelector("tbody");
  body.replaceChildren();
  for (const item of list.items) {
    const row = element("tr");
    row.dataset.id = item.id;
    row.append(element("td", item.receivedAt.replace("T", " ").slice(0, 19)), element("td", item.service),
      element("td", item.clinician), element("td", item.status),
      element("td", item.orders.map((order) => `${order.category} ${order.decision || "not evaluated"}`).join(", ")),
      element("td", item.cards.map((card) => card.indicator).join(", ")));
    row.addEventListener("click", () => showDecision(item.id));
    body.append(row);
  }
  const pages = Math.max(1, Math.ceil(list.total / list.pageSize));
  $("page-label").textContent = `Page ${list.page} of ${pages} (${list.total} calls)`;
  $("previous").disabled = list.page <= 1;
  $("next").disabled = list.page >= pages;
}

async function showDecision(id) {
  const item = await getJson(`../audit/decisions/${encodeURIComponent(id)}`);
  $("detail-id").textContent = `${item.receivedAt} · ${item.service}`;
  const body = $("detail-body");
  body.replaceChildren(element("p", `Clinician ${item.clinician || "–"} · patient ${item.patient || "–"} · status ${item.status}` +
    ` · data from ${item.dataSource} · ${item.latencyMs} ms · knowledge ${item.knowledgeVersion}`));
  for (const order of item.orders) {
    body.append(element("h3", `${order.category} order ${order.reference || ""}: ${order.decision || "not evaluated"}` +
      (order.conservativeDays === null ? "" : ` (${order.conservativeDays} of ${order.requiredDays} days)`)));
    const findings = element("ul");
    for (const finding of order.findings) findings.append(element("li", `${finding.code} (${finding.severity})`));
    body.append(element("strong", "Findings"), findings, element("strong", "Evidence"));
    const evidence = element("ul");
    for (const item of order.evidence) evidence.append(element("li", `${item.label}: ${item.description}, ${item.start} to ${item.end} (${item.reference})`));
    if (!order.evidence.length) evidence.append(element("li", "none"));
    body.append(evidence);
  }
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
  $("detail").hidden = false;
}

function updateCsvLink() {
  const params = periodQuery();
  params.set("by", $("csv-by").value);
  params.set("format", "csv");
  $("csv").href = `../audit/report?${params}`;
}

async function load() {
  const params = periodQuery();
  const decisions = new URLSearchParams(params);
  decisions.set("page", state.page);
  decisions.set("pageSize", state.pageSize);
  const months = new URLSearchParams(params);
  months.set("by", "month");
  const [summary, report, reasons, list] = await Promise.all([getJson("../audit/summary", params),
    getJson("../audit/report", months), getJson("../audit/override-reasons", params), getJson("../audit/decisions", decisions)]);
  renderSummary(summary);
  renderMonths(report);
  renderReasons(reasons);
  renderDecisions(list);
  updateCsvLink();
  document.body.dataset.loaded = "true";
}

$("period").addEventListener("submit", (event) => { event.preventDefault(); state.page = 1; load(); });
$("csv-by").addEventListener("change", updateCsvLink);
$("previous").addEventListener("click", () => { state.page -= 1; load(); });
$("next").addEventListener("click", () => { state.page += 1; load(); });
load();
