// jobmock dashboard: reads the control plane's JSON every second. No library, no build step.
// A token in the URL fragment (#token=SECRET) is sent as "Authorization: Bearer SECRET".
"use strict";
(function () {
  const BASE = "/_jobmock/";
  const REFRESH_MS = 1000;
  const params = new URLSearchParams(location.hash.replace(/^#/, ""));
  const token = params.get("token");
  const state = { selected: params.get("job"), picked: params.has("job"), states: {}, busy: false, virtual: false };
  const $ = (id) => document.getElementById(id);

  async function api(path, options) {
    const headers = Object.assign({ "Accept": "application/json" }, (options && options.headers) || {});
    if (token) headers["Authorization"] = "Bearer " + token;
    const response = await fetch(BASE + path, Object.assign({}, options || {}, { headers: headers, cache: "no-store" }));
    let body = null;
    try { body = await response.json(); } catch (e) { body = null; }
    if (!response.ok) {
      const why = body && body.error ? body.error : response.statusText;
      const hint = response.status === 401 || response.status === 403
        ? " (open the dashboard as /_jobmock/ui#token=YOUR_TOKEN)" : "";
      throw new Error(response.status + " " + path + ": " + why + hint);
    }
    return body;
  }

  function el(tag, text, cls) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }

  function roleOf(word) { return state.states[word] || ""; }

  function statusCell(word) {
    return el("span", word, "role role-" + roleOf(word));
  }

  function fillOptions(select, values) {
    const current = select.value;
    const have = Array.from(select.options).map((o) => o.value);
    values.forEach((v) => { if (!have.includes(v)) select.appendChild(el("option", v)); });
    select.value = current;
  }

  function renderJobs(data) {
    const tbody = $("jobs").querySelector("tbody");
    const jobs = data.jobs.slice().sort((a, b) => (a.created_at < b.created_at ? 1 : -1));
    if (!state.picked && jobs.length) state.selected = jobs[0].id;  // follow the newest until one is picked
    tbody.replaceChildren();
    jobs.forEach((job) => {
      const tr = document.createElement("tr");
      tr.dataset.job = job.id;
      tr.dataset.status = job.status;
      if (job.id === state.selected) tr.className = "selected";
      const idCell = el("td"); idCell.appendChild(el("code", job.id));
      const st = el("td"); st.appendChild(statusCell(job.status));
      [idCell, st, el("td", job.tenant), el("td", job.operation), el("td", job.polls),
       el("td", (job.created_at || "").replace("T", " ").replace(/\.\d+Z$/, "Z"))].forEach((c) => tr.appendChild(c));
      tr.addEventListener("click", () => { state.selected = job.id; state.picked = true; refresh(); });
      tbody.appendChild(tr);
    });
    const counts = Object.entries(data.counts || {}).map(([k, v]) => k + ": " + v).join(" · ");
    $("job-counts").textContent = counts;
    $("job-total").textContent = jobs.length + " shown";
    fillOptions($("status-filter"), Object.keys(state.states));
  }

  async function renderJob() {
    if (!state.selected) return;
    let job, tl;
    try {
      [job, tl] = await Promise.all([api("jobs/" + encodeURIComponent(state.selected)),
                                     api("jobs/" + encodeURIComponent(state.selected) + "/timeline")]);
    } catch (e) {
      $("job-id").textContent = state.selected + " (gone)";
      return;
    }
    $("job-id").textContent = job.id;
    $("job-status").replaceChildren(statusCell(job.status));
    $("timeline").innerHTML = tl.svg;  // drawn and escaped by jobmock (report.swimlane_svg)
    const tbody = $("history").querySelector("tbody");
    tbody.replaceChildren();
    job.history.forEach((h) => {
      const tr = document.createElement("tr");
      const st = el("td"); st.appendChild(statusCell(h.status));
      tr.appendChild(st); tr.appendChild(el("td", h.at));
      tbody.appendChild(tr);
    });
    const p = job.planned || {};
    const secs = (v) => (typeof v === "number" ? Number(v.toFixed(3)) : v);
    $("job-planned").textContent = "planned: queued " + secs(p.queued_for) + " s, running " + secs(p.running_for) +
      " s, outcome " + p.outcome + ", advances by " + p.advance + (job.callback_url ? " · callback " + job.callback_url : "");
  }

  function renderWebhooks(data) {
    const tbody = $("webhooks").querySelector("tbody");
    tbody.replaceChildren();
    data.deliveries.slice().reverse().forEach((d) => {
      const tr = document.createElement("tr");
      tr.dataset.delivery = d.id;
      const attempts = d.attempts.map((a) => "#" + a.number + " " + (a.status !== null ? a.status : (a.error || "…"))).join(", ");
      [el("td", d.id), el("td", d.job_id), el("td", d.event), el("td", d.state),
       el("td", attempts + " (of " + d.max_attempts + ")"), el("td", d.url)].forEach((c) => tr.appendChild(c));
      tbody.appendChild(tr);
    });
  }

  function renderVerdicts(report) {
    const tbody = $("verdicts").querySelector("tbody");
    tbody.replaceChildren();
    report.checks.forEach((c) => {
      const tr = document.createElement("tr");
      tr.dataset.check = c.name;
      tr.appendChild(el("td", c.title));
      tr.appendChild(el("td", c.passed ? "passed" : "failed", c.passed ? "pass" : "fail"));
      tr.appendChild(el("td", c.findings));
      tbody.appendChild(tr);
    });
    $("verdict-summary").replaceChildren(el("span", report.ok ? "all passed" : "findings", report.ok ? "pass" : "fail"));
    const list = $("findings");
    list.replaceChildren();
    report.findings.slice(0, 20).forEach((f) => list.appendChild(el("li", f.message)));
  }

  function renderClock(health) {
    const clock = health.clock;
    state.virtual = clock.kind === "virtual";
    $("clock-now").textContent = clock.now;
    $("clock-kind").textContent = clock.kind + (clock.kind === "real" && clock.speed !== 1 ? " x" + clock.speed : "");
    $("advance-form").querySelectorAll("button, input").forEach((b) => { b.disabled = !state.virtual; });
    $("advance-note").textContent = state.virtual ? (clock.next_due ? "next due " + clock.next_due : "nothing due")
      : "the clock is real: start the mock with --clock virtual to move it";
  }

  async function refresh() {
    if (state.busy) return;
    state.busy = true;
    try {
      const q = new URLSearchParams({ limit: "1000" });
      if ($("status-filter").value) q.set("status", $("status-filter").value);
      if ($("tenant-filter").value) q.set("tenant", $("tenant-filter").value);
      const [health, jobs, hooks, report] = await Promise.all([
        api("health"), api("jobs?" + q), api("webhooks"), api("report")]);
      renderClock(health);
      renderJobs(jobs);
      renderWebhooks(hooks);
      renderVerdicts(report);
      await renderJob();
      $("live").textContent = "live"; $("live").className = "ok";
      $("updated").textContent = new Date().toLocaleTimeString();
      $("error").textContent = "";
      document.body.dataset.refreshed = String(Number(document.body.dataset.refreshed || 0) + 1);
    } catch (e) {
      $("live").textContent = "offline"; $("live").className = "bad";
      $("error").textContent = e.message;
    } finally {
      state.busy = false;
    }
  }

  async function advance(seconds) {
    try {
      const r = await api("clock/advance", { method: "POST", headers: { "Content-Type": "application/json" },
                                             body: JSON.stringify({ seconds: seconds }) });
      $("advance-note").textContent = "moved " + seconds + " s, " + r.fired + " fired";
    } catch (e) { $("error").textContent = e.message; }
    refresh();
  }

  async function loadStatic() {
    const meta = await api("diagram");
    state.states = meta.states;
    $("api-name").textContent = meta.api;
    $("api-title").textContent = meta.title;
    document.title = "jobmock " + meta.api;
    $("diagram").innerHTML = meta.svg;  // drawn and escaped by jobmock (diagram.to_svg)
    fillOptions($("tenant-filter"), meta.tenants);
    fillOptions($("status-filter"), Object.keys(meta.states));
    const mode = await api("advance");
    $("mode").value = mode.mode; $("mode-polls").value = mode.polls;
  }

  $("advance-form").addEventListener("click", (ev) => {
    const s = ev.target && ev.target.dataset ? ev.target.dataset.seconds : undefined;
    if (s) advance(Number(s));
  });
  $("advance-form").addEventListener("submit", (ev) => { ev.preventDefault(); advance(Number($("advance-seconds").value)); });
  $("mode-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      const r = await api("advance", { method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ mode: $("mode").value, polls: Number($("mode-polls").value) }) });
      $("mode-note").textContent = "jobs submitted from now on advance by " + r.mode;
    } catch (e) { $("error").textContent = e.message; }
  });
  ["status-filter", "tenant-filter"].forEach((id) => $(id).addEventListener("change", refresh));

  loadStatic().catch((e) => { $("error").textContent = e.message; }).finally(() => {
    refresh();
    setInterval(refresh, REFRESH_MS);
  });
})();
