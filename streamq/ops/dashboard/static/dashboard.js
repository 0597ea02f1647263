// The streamq dashboard: polls the JSON API and draws it. Every value from the server is set
// with textContent (never parsed as HTML), and the page runs under a strict CSP.
"use strict";

(() => {
  const POLL_MS = 1500;
  const DATA_WIDTH = 100;
  const $ = (id) => document.getElementById(id);

  const state = {
    queue: null, // the queue shown below the table, or null
    tab: "waiting", // waiting | active | delayed | retrying | dead
    job: null, // the job shown in full (on the dead tab: its dead letter), or null
    paused: false, // whether the queue shown is paused
    allowActions: false,
    timer: null,
    busy: false, // a refresh runs
    historyAt: 0, // when (Date.now()) the charts last read the history
    again: false, // asked for while it ran: refresh once more after it
  };

  // ---- the API -----------------------------------------------------------------------------

  async function answer(response) {
    let body = null;
    try {
      body = await response.json();
    } catch (_) {
      // not JSON: the status says enough
    }
    if (!response.ok) {
      const error = new Error((body && body.error) || `HTTP ${response.status}`);
      error.status = response.status;
      throw error;
    }
    return body;
  }

  async function get(path, params) {
    const query = params ? `?${new URLSearchParams(params)}` : "";
    return answer(await fetch(path + query, { cache: "no-store", headers: { accept: "application/json" } }));
  }

  async function post(path, body) {
    return answer(
      await fetch(path, {
        method: "POST",
        cache: "no-store",
        headers: { "content-type": "application/json", "x-streamq-dashboard": "1" },
        body: JSON.stringify(body),
      }),
    );
  }

  // ---- drawing -----------------------------------------------------------------------------

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function row(cells) {
    const tr = document.createElement("tr");
    for (const cell of cells) tr.append(cell instanceof Node ? cell : el("td", cell));
    return tr;
  }

  function num(value, className) {
    return el("td", value === null || value === undefined ? "?" : Number(value).toLocaleString("en"), `num ${className || ""}`);
  }

  function age(seconds) {
    if (seconds === null || seconds === undefined) return "-";
    if (seconds < 10) return `${seconds.toFixed(1)}s`;
    if (seconds < 60) return `${Math.round(seconds)}s`;
    let minutes = Math.floor(seconds / 60);
    if (minutes < 60) return `${minutes}m${String(Math.floor(seconds % 60)).padStart(2, "0")}s`;
    let hours = Math.floor(minutes / 60);
    minutes %= 60;
    if (hours < 48) return `${hours}h${String(minutes).padStart(2, "0")}m`;
    return `${Math.floor(hours / 24)}d${hours % 24}h`;
  }

  function when(unix, now) {
    if (unix === null || unix === undefined) return "-";
    const delta = unix - now;
    return delta >= 0 ? `in ${age(delta)}` : `${age(-delta)} ago`;
  }

  function time(unix, now) {
    const cell = el("td", when(unix, now), "nowrap");
    if (unix !== null && unix !== undefined) cell.title = stamp(unix);
    return cell;
  }

  function stamp(unix) {
    return new Date(unix * 1000).toISOString().replace("T", " ").slice(0, 19) + " UTC";
  }

  function dataText(data, width) {
    let text;
    try {
      text = JSON.stringify(data);
    } catch (_) {
      text = String(data);
    }
    if (text === undefined) text = String(data);
    return width && text.length > width ? `${text.slice(0, width - 1)}…` : text;
  }

  function firstLine(text) {
    const line = (text || "").trim().split("\n")[0] || "-";
    return line.length > 90 ? `${line.slice(0, 89)}…` : line;
  }

  function link(params, text) {
    const a = el("a", text);
    a.href = `#${new URLSearchParams(params)}`;
    return a;
  }

  function pausedTag() {
    const tag = el("span", "paused", "tag paused");
    tag.title = "no consumer starts a job of this queue until it is resumed";
    return tag;
  }

  function showQueues(page) {
    state.allowActions = page.allow_actions;
    $("server").textContent = `${page.redis} · prefix ${page.prefix}`;
    const mode = $("mode");
    mode.textContent = page.allow_actions ? "actions allowed" : "read-only";
    mode.className = page.allow_actions ? "badge live" : "badge";
    mode.title = page.allow_actions
      ? "retry, purge, cancel, pause and resume are enabled"
      : "start with --allow-actions to retry or purge dead letters, cancel jobs, pause or resume queues";
    const rows = page.queues.map((q) => {
      const s = q.stats;
      const name = el("td", null, "mono");
      name.append(link({ queue: q.name, tab: state.queue === q.name ? state.tab : "waiting" }, q.name));
      if (s.paused) name.append(pausedTag());
      const tr = row([
        name,
        num(s.waiting, s.waiting ? "strong" : ""),
        num(s.active, s.active ? "strong" : ""),
        num(s.delayed),
        num(s.retrying, s.retrying ? "warn" : ""),
        num(s.dead, s.dead ? "bad" : ""),
        num(s.completed),
        el("td", s.waiting ? age(s.oldest_waiting_age) : "-", "num"),
        num(s.groups),
      ]);
      tr.dataset.queue = q.name;
      if (q.name === state.queue) tr.className = "selected";
      return tr;
    });
    $("queues").tBodies[0].replaceChildren(...rows);
    $("no-queues").hidden = rows.length > 0;
    $("queues").hidden = rows.length === 0;
  }

  // ---- charts: each queue's last hour, from its per-minute history (hand-drawn SVG) ---------

  const HISTORY_MINUTES = 60;
  const HISTORY_MS = 5000; // minute-level counts: read every 5 s, not at every poll
  // The drawing's coordinates (its viewBox); the plot area is the rect.plot in each chart.
  const CHART = { width: 380, height: 96, left: 52, right: 8, top: 6, bottom: 16 };
  const SVG_NS = "http://www.w3.org/2000/svg";

  function svg(tag, attributes, text) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function rate(perSecond) {
    if (perSecond === 0) return "0/s";
    return perSecond < 10 ? `${perSecond.toPrecision(2)}/s` : `${Math.round(perSecond).toLocaleString("en")}/s`;
  }

  function latency(seconds) {
    if (seconds === null || seconds === undefined) return "-";
    if (seconds < 0.01) return `${(seconds * 1000).toFixed(1)}ms`;
    if (seconds < 1) return `${Math.round(seconds * 1000)}ms`;
    return age(seconds);
  }

  // A line chart of `series` ({name, values}: a value per minute, null for none), scaled to the
  // largest value (data-max): a path per series, broken where a value is missing.
  function lineChart(kind, series, format, minutes) {
    const plotWidth = CHART.width - CHART.left - CHART.right;
    const plotHeight = CHART.height - CHART.top - CHART.bottom;
    const values = series.flatMap((s) => s.values.filter((v) => v !== null));
    const max = Math.max(0, ...values) || 1;
    const root = svg("svg", {
      class: "chart",
      viewBox: `0 0 ${CHART.width} ${CHART.height}`,
      role: "img",
      "data-chart": kind,
      "data-max": max,
    });
    root.append(svg("rect", { class: "plot", x: CHART.left, y: CHART.top, width: plotWidth, height: plotHeight }));
    const label = (x, y, anchor, text) => svg("text", { x, y, "text-anchor": anchor }, text);
    root.append(
      label(CHART.left - 4, CHART.top + 8, "end", values.length ? format(max) : ""),
      label(CHART.left - 4, CHART.top + plotHeight, "end", values.length ? format(0) : ""),
      label(CHART.left, CHART.height - 3, "start", `-${minutes}m`),
      label(CHART.left + plotWidth, CHART.height - 3, "end", "now"),
    );
    const step = minutes > 1 ? plotWidth / (minutes - 1) : 0;
    for (const s of series) {
      let d = "";
      const dots = []; // a point with no neighbour draws no line: a dot shows it
      s.values.forEach((value, i) => {
        if (value === null) return;
        const x = (CHART.left + i * step).toFixed(2);
        const y = (CHART.top + plotHeight * (1 - value / max)).toFixed(2);
        const joined = i > 0 && s.values[i - 1] !== null;
        d += `${joined ? "L" : "M"}${x},${y} `;
        if (!joined && (i + 1 >= s.values.length || s.values[i + 1] === null)) {
          dots.push(svg("circle", { class: s.name, cx: x, cy: y, r: 2.5 }));
        }
      });
      const path = svg("path", { class: s.name, "data-series": s.name, d: d.trim() });
      path.append(svg("title", {}, s.name));
      root.append(path, ...dots);
    }
    if (!values.length) root.append(label(CHART.left + plotWidth / 2, CHART.top + plotHeight / 2 + 4, "middle", "no job started"));
    return root;
  }

  function queueCharts(queue) {
    const points = queue.history;
    const sum = (field) => points.reduce((total, p) => total + p[field], 0);
    const card = el("div", null, "chart-card");
    card.dataset.queue = queue.name;
    const title = el("h3", queue.name); // text: the table above links the queue
    const legend = el(
      "p",
      `${sum("completed").toLocaleString("en")} completed · ${sum("failed").toLocaleString("en")} failed attempts ·` +
        ` ${sum("dead").toLocaleString("en")} dead in the last hour`,
      "legend",
    );
    const perSecond = (field) => points.map((p) => p[field] / 60);
    const waits = (field) => points.map((p) => (p.started ? p[field] : null));
    card.append(
      title,
      legend,
      lineChart("rate", [
        { name: "completed", values: perSecond("completed") },
        { name: "failed", values: perSecond("failed") },
      ], rate, points.length),
      lineChart("latency", [
        { name: "p50", values: waits("latency_p50") },
        { name: "p99", values: waits("latency_p99") },
      ], latency, points.length),
    );
    return card;
  }

  async function refreshCharts() {
    if (Date.now() - state.historyAt < HISTORY_MS) return;
    const page = await get("/api/history", { minutes: HISTORY_MINUTES });
    state.historyAt = Date.now();
    $("charts").replaceChildren(...page.queues.map(queueCharts));
    $("charts-section").hidden = page.queues.length === 0;
  }

  const COLUMNS = {
    waiting: ["job id", "priority", "enqueued", "attempts", "data"],
    active: ["job id", "group", "attempts", "enqueued", "data"],
    delayed: ["job id", "priority", "due", "enqueued", "data"],
    retrying: ["job id", "due", "attempts", "group", "last error", "data"],
    dead: ["job id", "failed", "attempts", "error", "data"],
  };

  // An error's first line, the whole of it on hover.
  function errorCell(error) {
    const cell = el("td", firstLine(error), "error");
    cell.title = error || "";
    return cell;
  }

  function retryDead(jobId) {
    act(() => post("/api/retry-dead", { queue: state.queue, job_id: jobId }), (r) => `retried ${r.retried} job`);
  }

  function cancelJob(jobId) {
    if (!confirm(`Cancel job ${jobId} of ${state.queue}? If it runs, its handler is stopped; it is not retried.`)) return;
    act(
      () => post("/api/cancel", { queue: state.queue, job_id: jobId }),
      (r) => (r.cancelled ? `cancelled job ${r.job_id}` : `job ${r.job_id} was not cancelled: it is unknown or finished`),
    );
  }

  // A row's button: its click is the button's, not the row's (which opens the job).
  function rowButton(text, data, onClick, className) {
    const button = el("button", text, className);
    button.type = "button";
    Object.assign(button.dataset, data);
    button.addEventListener("click", (event) => {
      event.stopPropagation();
      onClick();
    });
    return button;
  }

  function jobCells(tab, job, id, now) {
    const data = el("td", dataText(job.data, DATA_WIDTH), "mono data");
    data.title = dataText(job.data);
    if (tab === "waiting") return [id, num(job.priority), time(job.enqueued_at, now), num(job.attempts), data];
    if (tab === "active") return [id, el("td", job.group || "-", "mono"), num(job.attempts), time(job.enqueued_at, now), data];
    if (tab === "delayed") return [id, num(job.priority), time(job.due_at, now), time(job.enqueued_at, now), data];
    if (tab === "retrying") return [id, time(job.due_at, now), num(job.attempts), job.group || "-", errorCell(job.error), data];
    return [id, time(job.failed_at, now), num(job.attempts), errorCell(job.error), data];
  }

  function jobRow(tab, job, now) {
    const jobId = tab === "dead" ? job.job_id : job.id;
    const id = el("td", null, "mono");
    id.append(link({ queue: state.queue, tab, job: jobId }, jobId));
    const cells = jobCells(tab, job, id, now);
    if (state.allowActions) {
      const cell = el("td", null, "actions");
      cell.append(
        tab === "dead"
          ? rowButton("Retry", { retry: jobId }, () => retryDead(jobId))
          : rowButton("Cancel", { cancel: jobId }, () => cancelJob(jobId), "danger"),
      );
      cells.push(cell);
    }
    const tr = row(cells);
    tr.dataset.job = jobId;
    tr.className = "clickable" + (jobId === state.job ? " selected" : "");
    tr.addEventListener("click", () => go({ queue: state.queue, tab, job: jobId }));
    return tr;
  }

  function showQueue(page) {
    const now = page.at;
    $("queue-section").hidden = false;
    $("queue-name").textContent = page.queue.name;
    state.paused = page.queue.stats.paused;
    $("queue-paused").hidden = !state.paused;
    $("paused-note").hidden = !state.paused;
    $("queue-actions").hidden = !state.allowActions;
    $("pause").textContent = state.paused ? "Resume" : "Pause";
    $("pause").title = state.paused ? "let the consumers start jobs again" : "stop every consumer from starting jobs";
    const groups = page.queue.groups.map((g) => {
      const idle = g.consumers.length ? Math.max(...g.consumers.map((c) => c.idle)) : null;
      return row([el("td", g.name, "mono"), num(g.consumers.length), num(g.pending), num(g.lag), el("td", age(idle), "num")]);
    });
    $("groups").tBodies[0].replaceChildren(...groups);
    $("groups-wrap").hidden = groups.length === 0;

    const counts = page.queue.stats; // waiting, active, delayed, retrying and dead: one per tab
    for (const button of document.querySelectorAll("[data-tab]")) {
      const tab = button.dataset.tab;
      button.setAttribute("aria-selected", String(tab === state.tab));
      button.querySelector(".count").textContent = counts[tab].toLocaleString("en");
      button.classList.toggle("bad", tab === "dead" && counts.dead > 0);
    }
    const columns = [...COLUMNS[state.tab]];
    if (state.allowActions) columns.push(""); // retry (dead) or cancel (the others)
    $("jobs").tHead.rows[0].replaceChildren(...columns.map((c) => el("th", c, ["priority", "attempts"].includes(c) ? "num" : "")));
    const jobs = page[state.tab];
    $("jobs").tBodies[0].replaceChildren(...jobs.map((job) => jobRow(state.tab, job, now)));
    $("jobs").hidden = jobs.length === 0;
    $("no-jobs").hidden = jobs.length > 0;
    $("no-jobs").textContent = `No ${state.tab} jobs.`;
    const more = counts[state.tab] - jobs.length;
    $("more").hidden = more <= 0;
    $("more").textContent = `… and ${more.toLocaleString("en")} more (the first ${page.limit} are listed)`;
    $("dead-actions").hidden = !(state.tab === "dead" && state.allowActions && counts.dead > 0);
  }

  function showDetail(letter) {
    $("detail").hidden = false;
    $("detail-id").textContent = letter.job_id;
    $("detail-failed").textContent = stamp(letter.failed_at);
    $("detail-attempts").textContent = String(letter.attempts);
    $("detail-groups").textContent = letter.groups.join(", ") || "-";
    $("detail-error").textContent = letter.error;
    $("detail-data").textContent = JSON.stringify(letter.data, null, 2);
    $("detail-retry").hidden = !state.allowActions;
  }

  const FINISHED = ["completed", "dead", "cancelled"];

  // Another step of the job's flow: its queue, and its id as a link to its job view.
  function jobRef(tag, ref) {
    const node = el(tag);
    node.dataset.queue = ref.queue;
    node.dataset.job = ref.id;
    node.append(el("span", ref.queue, "muted"), " ", link({ queue: ref.queue, tab: state.tab, job: ref.id }, ref.id));
    return node;
  }

  // A flow step's parent and children (the API lists the first 1,000 of a big fan-in and
  // counts them all). The list is redrawn only when it changed, so its scroll stays put.
  let drawnChildren = "";

  function showFlow(job) {
    $("job-parent").replaceChildren(...(job.parent ? [jobRef("span", job.parent)] : []));
    $("job-parent").hidden = $("job-parent-label").hidden = !job.parent;
    const children = job.children || [];
    const total = job.children_total ?? children.length;
    const drawn = JSON.stringify([state.tab, children]);
    if (drawn !== drawnChildren) {
      drawnChildren = drawn;
      $("job-children").replaceChildren(...children.map((ref) => jobRef("li", ref)));
    }
    $("job-children-label").textContent = `children (${total.toLocaleString("en")})`;
    $("job-children-label").hidden = $("job-children-wrap").hidden = total === 0;
    const more = total - children.length;
    $("job-children-more").hidden = more <= 0;
    $("job-children-more").textContent = `… and ${more.toLocaleString("en")} more (the first ${children.length.toLocaleString("en")} are listed)`;
  }

  function showJob(job, now) {
    $("job-view").hidden = false;
    $("job-id").textContent = job.id;
    $("job-state").textContent = job.state;
    $("job-state").className = `tag ${job.state}`;
    $("job-attempts").textContent = String(job.attempts);
    const progress = job.progress;
    const percent = typeof progress === "number" && progress >= 0 && progress <= 100;
    $("job-progress-bar").hidden = !percent;
    if (percent) $("job-progress-bar").value = progress;
    $("job-progress").textContent = progress === null || progress === undefined ? "-" : dataText(progress, DATA_WIDTH);
    $("job-progress").title = progress === null || progress === undefined ? "" : dataText(progress);
    $("job-enqueued").textContent = job.enqueued_at ? `${stamp(job.enqueued_at)} (${when(job.enqueued_at, now)})` : "-";
    $("job-finished").textContent = job.finished_at ? `${stamp(job.finished_at)} (${when(job.finished_at, now)})` : "-";
    const groups = Object.entries(job.groups || {});
    $("job-groups").textContent = groups.map(([group, where]) => `${group}: ${where}`).join(", ");
    $("job-groups").hidden = $("job-groups-label").hidden = groups.length === 0;
    showFlow(job);
    $("job-error").textContent = job.error || "";
    $("job-error-wrap").hidden = !job.error;
    $("job-result").textContent = JSON.stringify(job.result, null, 2) ?? String(job.result);
    $("job-result-wrap").hidden = job.state !== "completed";
    const logs = $("job-logs");
    const followed = logs.scrollTop + logs.clientHeight >= logs.scrollHeight - 4; // keep to the newest
    logs.replaceChildren(...job.logs.map((line) => el("li", line)));
    if (followed) logs.scrollTop = logs.scrollHeight;
    logs.hidden = job.logs.length === 0;
    $("job-no-logs").hidden = job.logs.length > 0;
    $("job-log-count").textContent = job.logs.length ? `(${job.logs.length.toLocaleString("en")} lines)` : "";
    $("job-cancel").hidden = !state.allowActions || FINISHED.includes(job.state);
  }

  function status(text, bad) {
    const node = $("status");
    node.textContent = text;
    node.className = bad ? "status bad" : "status live";
  }

  // ---- the loop ----------------------------------------------------------------------------

  async function refresh() {
    const page = await get("/api/queues");
    showQueues(page);
    await refreshCharts();
    if (state.queue === null) {
      $("queue-section").hidden = true;
    } else {
      try {
        showQueue(await get("/api/queue", { name: state.queue }));
      } catch (error) {
        if (error.status !== 404) throw error;
        go({}); // the queue is gone (another prefix, or its keys deleted)
        return;
      }
    }
    // The dead tab shows a dead letter in full, the others the job's state and log.
    const dead = state.tab === "dead";
    if (state.job === null || !dead) $("detail").hidden = true;
    if (state.job === null || dead) $("job-view").hidden = true;
    if (state.job !== null) {
      try {
        if (dead) showDetail(await get("/api/dead-letter", { queue: state.queue, job_id: state.job }));
        else showJob(await get("/api/job", { queue: state.queue, id: state.job }), page.at);
      } catch (error) {
        if (error.status !== 404) throw error;
        go({ queue: state.queue, tab: state.tab }); // retried, purged or expired meanwhile
        return;
      }
    }
    $("updated").textContent = `updated ${new Date(page.at * 1000).toLocaleTimeString("en-GB")}`;
    status("live", false);
  }

  // One refresh at a time, so answers are drawn in the order they were asked for. A tick while
  // one runs (after an action, a new hash) must not be dropped: that refresh may have read
  // Redis before the action, so another runs right after it and draws last.
  async function tick() {
    clearTimeout(state.timer);
    if (state.busy) {
      state.again = true;
      return;
    }
    state.busy = true;
    try {
      do {
        state.again = false;
        try {
          await refresh();
        } catch (error) {
          status(`error: ${error.message}`, true);
        }
      } while (state.again);
    } finally {
      state.busy = false;
    }
    state.timer = setTimeout(tick, document.hidden ? POLL_MS * 4 : POLL_MS);
  }

  async function act(request, describe) {
    try {
      const result = await request();
      status(describe(result), false);
    } catch (error) {
      status(`refused: ${error.message}`, true);
    }
    await tick();
  }

  function readHash() {
    const params = new URLSearchParams(location.hash.slice(1));
    state.queue = params.get("queue");
    state.tab = Object.hasOwn(COLUMNS, params.get("tab")) ? params.get("tab") : "waiting";
    state.job = state.queue === null ? null : params.get("job");
  }

  function go(params) {
    const hash = `#${new URLSearchParams(params)}`;
    if (location.hash === hash || (hash === "#" && !location.hash)) {
      readHash();
      tick();
    } else {
      location.hash = hash;
    }
  }

  window.addEventListener("hashchange", () => {
    readHash();
    tick();
  });
  for (const button of document.querySelectorAll("[data-tab]")) {
    button.addEventListener("click", () => go({ queue: state.queue, tab: button.dataset.tab }));
  }
  $("queues").addEventListener("click", (event) => {
    const tr = event.target.closest("tr[data-queue]");
    if (tr && !event.target.closest("a")) go({ queue: tr.dataset.queue, tab: "waiting" });
  });
  $("retry-all").addEventListener("click", () => {
    if (confirm(`Retry every dead letter of ${state.queue}?`)) {
      act(() => post("/api/retry-dead", { queue: state.queue, job_id: null }), (r) => `retried ${r.retried} jobs`);
    }
  });
  $("purge").addEventListener("click", () => {
    if (confirm(`Delete every dead letter of ${state.queue}? This cannot be undone.`)) {
      act(() => post("/api/purge-dead", { queue: state.queue }), (r) => `purged ${r.purged} dead letters`);
    }
  });
  $("pause").addEventListener("click", () => {
    const resume = state.paused;
    act(
      () => post(resume ? "/api/resume" : "/api/pause", { queue: state.queue }),
      (r) => `queue ${r.queue} ${r.changed ? "is" : "was"} ${r.paused ? "paused" : "running"}${r.changed ? " now" : " already"}`,
    );
  });
  $("detail-retry").addEventListener("click", () => retryDead(state.job));
  $("job-cancel").addEventListener("click", () => cancelJob(state.job));
  $("job-close").addEventListener("click", () => go({ queue: state.queue, tab: state.tab }));
  $("detail-close").addEventListener("click", () => go({ queue: state.queue, tab: "dead" }));
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) tick();
  });

  readHash();
  tick();
})();
