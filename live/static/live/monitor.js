// The live monitor: a full snapshot from the monitor socket, then every event; progress bars move in
// place, anything else refreshes the snapshot (at most once a second). No build step, no framework.
"use strict";

const KEY_STORAGE = "jobqueue.apiKey";
const REFRESH_MIN_INTERVAL_MS = 1000;
const FINISHED_PAGE_SIZE = 20;

let socket = null;
let refreshTimer = null;
let lastRefresh = 0;
let reconnectDelay = 1000;

const $ = (selector) => document.querySelector(selector);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value);
  }
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(child ?? ""));
  return node;
}

const pill = (status) => el("span", { class: `pill ${status}` }, status);
const short = (id) => el("code", { title: id }, String(id).slice(0, 8));
const since = (iso) => (iso ? `${Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000))} s ago` : "");

function progressBar(jobId, percent) {
  return el("span", { class: "bar", "data-job": jobId, title: `${percent}%` },
    el("span", { style: `width: ${percent}%` }));
}

function gpuUse(worker) {
  const t = worker.telemetry || {};
  if (t.gpu_utilization_percent === undefined) return `${worker.gpu_memory_gb} GB`;
  return `${t.gpu_utilization_percent}% · ${t.gpu_memory_used_gb}/${t.gpu_memory_total_gb} GB`;
}

function fill(tableId, rows) {
  const body = $(`#${tableId} tbody`);
  body.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: "6" }, "none"))]));
}

// An API path from its segments, each percent-encoded: an id never changes which action is taken.
// A segment of dots alone is a step up in any URL, encoded or not: such an id cannot be acted on.
function apiPath(...segments) {
  if (segments.some((segment) => /^\.*$/.test(String(segment)))) return null;
  return "/api/" + segments.map((segment) => encodeURIComponent(String(segment))).join("/");
}

async function act(path, what) {
  if (path === null) {
    alert(`${what}: this id cannot be addressed in a URL`);
    return;
  }
  const response = await fetch(path, { method: "POST", headers: { "x-api-key": sessionStorage.getItem(KEY_STORAGE) } });
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    alert(`${what}: ${body.error?.message ?? response.status}`);
  }
  requestRefresh();
}

// Operators see how EmProps is being told of its workflows' endings (other keys get a 403: hidden).
async function renderEmprops() {
  const response = await fetch("/api/emprops/notifications/counts", {
    headers: { "x-api-key": sessionStorage.getItem(KEY_STORAGE) },
  }).catch(() => null);
  if (!response || !response.ok) return;
  const counts = (await response.json()).counts;
  $("#emprops-counts").replaceChildren(
    ...[["waiting", counts.pending], ["retrying", counts.retrying], ["notified", counts.notified],
        ["dead-lettered", counts.dead_lettered]]
      .map(([label, value]) => el("div", { class: "tile" }, el("b", {}, String(value)), label)));
  $("#emprops").hidden = false;
}

function render(data) {
  renderEmprops();
  const stats = data.system_stats;
  $("#stats").replaceChildren(
    ...[["waiting", stats.pending_jobs], ["running", stats.active_jobs], ["completed", stats.completed_jobs],
        ["failed", stats.failed_jobs], ["workers live", `${stats.active_workers} / ${stats.total_workers}`],
        ["machines", stats.total_machines]]
      .map(([label, value]) => el("div", { class: "tile" }, el("b", {}, String(value)), label)));

  const counts = data.throughput;
  const top = Math.max(1, ...counts);
  const points = counts.map((n, i) => `${(i * 300) / Math.max(1, counts.length - 1)},${38 - (n / top) * 36}`);
  $("#sparkline").replaceChildren(document.createElementNS("http://www.w3.org/2000/svg", "polyline"));
  $("#sparkline polyline").setAttribute("points", points.join(" "));

  fill("queues", data.queues.map((q) => el("tr", {},
    el("td", {}, q.type), el("td", {}, q.pool ?? "any"), el("td", {}, (q.capabilities || []).join(", ")),
    el("td", {}, String(q.depth)), el("td", {}, since(q.oldest_queued_at)))));

  const jobs = [...data.jobs.active, ...data.jobs.pending];
  fill("jobs", jobs.map((job) => el("tr", { "data-job-row": job.id },
    el("td", {}, short(job.id)), el("td", {}, job.type), el("td", { class: "status" }, pill(job.status)),
    el("td", {}, progressBar(job.id, job.progress), " ", el("span", { "data-stage": job.id }, job.stage || "")),
    el("td", {}, job.worker_id ?? ""),
    el("td", {}, el("button", { onclick: () => act(apiPath("jobs", job.id, "cancel"), "cancel") }, "Cancel")))));

  const finished = [...data.jobs.completed, ...data.jobs.failed]
    .sort((a, b) => Date.parse(b.completed_at) - Date.parse(a.completed_at));
  fill("finished", finished.map((job) => el("tr", { "data-job-row": job.id },
    el("td", {}, short(job.id)), el("td", {}, job.type), el("td", { class: "status" }, pill(job.status)),
    el("td", {}, progressBar(job.id, job.progress)), el("td", {}, job.worker_id ?? ""),
    el("td", {}, since(job.completed_at)))));

  fill("workflows", data.workflows.map((wf) => el("tr", {},
    el("td", {}, wf.name || short(wf.id)), el("td", {}, pill(wf.status)),
    el("td", {}, el("div", { class: "steps" },
      ...wf.steps.map((s) => el("span", { class: `step ${s.status}`, title: `${s.index} ${s.name}: ${s.status}` })))),
    el("td", {}, progressBar(`wf-${wf.id}`, wf.progress)),
    el("td", {}, ["completed", "failed", "cancelled"].includes(wf.status) ? "" :
      el("button", { onclick: () => act(apiPath("workflows", wf.id, "cancel"), "cancel workflow") }, "Cancel")))));

  fill("workers", data.workers.map((w) => el("tr", {},
    el("td", {}, w.machine_id), el("td", {}, w.id), el("td", {}, w.pool),
    el("td", {}, pill(w.live ? w.status : "offline"), w.draining ? pill("draining") : "",
      w.engine_healthy ? "" : el("span", { class: "pill failed", title: w.health_detail }, "engine down")),
    el("td", {}, gpuUse(w)), el("td", {}, ...w.current_jobs.map(short)))));

  fill("dead-letters", data.dead_letters.map((d) => el("tr", {},
    el("td", {}, short(d.job_id)), el("td", {}, d.job__type), el("td", {}, d.reason), el("td", {}, since(d.created_at)),
    el("td", {}, el("button", { onclick: () => act(apiPath("dead-letters", d.id, "requeue"), "requeue") }, "Requeue")))));
}

function onEvent(message) {
  if (message.type === "job_progress") {
    const bar = document.querySelector(`#jobs .bar[data-job="${message.job_id}"] > span`);
    if (bar) {
      bar.style.width = `${message.data.payload.progress}%`;
      $(`[data-stage="${message.job_id}"]`).textContent = message.data.payload.stage || "";
      return;
    }
  }
  requestRefresh();
}

function requestRefresh() {
  if (refreshTimer) return;
  const wait = Math.max(0, lastRefresh + REFRESH_MIN_INTERVAL_MS - Date.now());
  refreshTimer = setTimeout(() => {
    refreshTimer = null;
    lastRefresh = Date.now();
    socket?.readyState === WebSocket.OPEN &&
      socket.send(JSON.stringify({ type: "request_full_state", finishedJobsPagination: { page: 1, pageSize: FINISHED_PAGE_SIZE } }));
  }, wait);
}

function setConnection(state) {
  const badge = $("#connection");
  badge.textContent = state;
  badge.className = `pill ${state === "live" ? "online" : "offline"}`;
}

function connect() {
  const key = sessionStorage.getItem(KEY_STORAGE);
  if (!key) { $("#key-form").hidden = false; return; }
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  socket = new WebSocket(`${scheme}://${location.host}/ws/monitor/monitor-${Date.now()}?token=${encodeURIComponent(key)}`);
  socket.onmessage = (raw) => {
    const message = JSON.parse(raw.data);
    if (message.type === "authenticated") {
      setConnection("live");
      reconnectDelay = 1000;
      socket.send(JSON.stringify({ type: "subscribe", topics: ["jobs", "workers", "workflows"] }));
      requestRefresh();
    } else if (message.type === "full_state_snapshot") render(message.data);
    else if (message.type === "error" && message.code === "invalid_api_key") sessionStorage.removeItem(KEY_STORAGE);
    else if (message.data) onEvent(message);
  };
  socket.onclose = (closed) => {
    setConnection("disconnected");
    if (closed.code === 4401) { $("#key-form").hidden = false; return; }
    setTimeout(connect, reconnectDelay);
    reconnectDelay = Math.min(reconnectDelay * 2, 30000);
  };
}

$("#key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(KEY_STORAGE, $("#key-input").value.trim());
  $("#key-form").hidden = true;
  connect();
});

connect();
