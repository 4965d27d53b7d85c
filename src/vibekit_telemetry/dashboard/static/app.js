/* vibekit-telemetry dashboard: one plain script, no build step, no network beyond this server.
 *
 * Pages live in the URL hash (#/sessions?status=error&agent=claude), so every view and filter is a
 * shareable link. Live events arrive over the WebSocket /ws?batch=true (Server-Sent Events when the
 * WebSocket cannot connect), are aggregated here, and the screen is redrawn at most 4 times a second
 * whatever the ingest rate. */
"use strict";

(function () {
  const KEY_STORE = "vibekit.apiKey";
  const THEME_STORE = "vibekit.theme";
  const FEED_MAX = 500;          // events kept for the live feed
  const SERIES_S = 300;          // seconds of live time series
  const REDRAW_MS = 250;         // at most 4 redraws a second
  const PAGE_SIZE = 50;
  const sessionCursors = new Map(); // "listing|page" -> the cursor the page before handed out (next_cursor)

  const $ = (sel, root) => (root || document).querySelector(sel);
  const view = () => $("#view");

  // ---------------------------------------------------------------- helpers
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") el.className = v;
      else if (k === "style") el.style.cssText = v;  // CSSOM, which the page's CSP allows (style attributes it does not)
      else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? "" : String(v));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }
  // Time-ordered ids (UUIDv7) share their first digits within a millisecond: show the random tail.
  const shortId = (id) => (id.length > 14 ? `…${id.slice(-10)}` : id);
  const fmtInt = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en"));
  function fmtMs(ms) {
    if (ms === null || ms === undefined || isNaN(ms)) return "–";
    if (ms < 1000) return `${Math.round(ms)} ms`;
    if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
    if (ms < 3600000) return `${(ms / 60000).toFixed(1)} min`;
    return `${(ms / 3600000).toFixed(1)} h`;
  }
  const fmtTime = (ts) => (ts ? new Date(ts).toLocaleString("en-GB", { hour12: false }) : "–");
  const fmtClock = (ts) => (ts ? new Date(ts).toLocaleTimeString("en-GB", { hour12: false }) : "–");
  function fmtBytes(b) {
    if (b === null || b === undefined) return "–";
    const units = ["B", "KB", "MB", "GB", "TB"];
    let i = 0;
    while (b >= 1024 && i < units.length - 1) { b /= 1024; i++; }
    return `${b.toFixed(i ? 1 : 0)} ${units[i]}`;
  }
  function percentile(sorted, p) {
    if (!sorted.length) return null;
    const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
    return sorted[idx];
  }

  // ---------------------------------------------------------------- routing (state in the URL)
  function route() {
    const hash = location.hash.replace(/^#/, "") || "/overview";
    const [path, query] = hash.split("?");
    const parts = path.split("/").filter(Boolean);
    return { page: parts[0] || "overview", id: parts[1] ? decodeURIComponent(parts.slice(1).join("/")) : null,
      params: new URLSearchParams(query || "") };
  }
  function setParams(page, params, replace) {
    const clean = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== "" && v !== null && v !== undefined) clean.set(k, v);
    const qs = clean.toString();
    const target = `#/${page}${qs ? "?" + qs : ""}`;
    if (replace) history.replaceState(null, "", target); else location.hash = target;
  }

  // ---------------------------------------------------------------- API access and auth
  let apiKey = sessionStorage.getItem(KEY_STORE) || "";
  let authWaiters = [];

  async function api(path, params) {
    const url = new URL(path, location.origin);
    for (const [k, v] of Object.entries(params || {})) {
      if (v === "" || v === null || v === undefined) continue;
      for (const item of Array.isArray(v) ? v : [v]) url.searchParams.append(k, item);
    }
    const headers = { Accept: "application/json" };
    if (apiKey) headers["X-API-Key"] = apiKey;
    const res = await fetch(url, { headers, cache: "no-store" });
    if (res.status === 401) { await askForKey(); return api(path, params); }
    if (!res.ok) {
      let message = `${res.status} ${res.statusText}`;
      try {
        const body = await res.json();
        const details = (body.details || []).map((d) => `${d.field}: ${d.message}`).join("; ");
        message = (body.message || message) + (details ? ` (${details})` : "");  // which field, what it expects
      } catch (e) { /* not JSON */ }
      const err = new Error(message); err.status = res.status; throw err;
    }
    return res;
  }
  const getJSON = async (path, params) => (await api(path, params)).json();

  function askForKey() {
    // No data is on screen while the key is missing: the view is emptied before asking.
    view().replaceChildren(h("p", { class: "muted" }, "Waiting for an API key…"));
    const dialog = $("#auth");
    $("#auth-error").textContent = apiKey ? "That key was refused." : "";
    if (!dialog.open) dialog.showModal();
    $("#auth-key").focus();
    return new Promise((resolve) => authWaiters.push(resolve));
  }
  function setupAuth() {
    $("#auth-form").addEventListener("submit", () => {
      apiKey = $("#auth-key").value.trim();
      sessionStorage.setItem(KEY_STORE, apiKey);
      $("#auth-key").value = "";
      $("#signout").hidden = false;
      authWaiters = [];  // the requests that asked are abandoned: the page renders afresh with the key
      live.restart();
      render();
    });
    $("#auth").addEventListener("cancel", (e) => e.preventDefault());  // no way around the key
    $("#signout").hidden = !apiKey;
    $("#signout").addEventListener("click", () => {
      sessionStorage.removeItem(KEY_STORE); apiKey = ""; $("#signout").hidden = true;
      live.restart(); render();
    });
  }

  async function download(what, format, params) {
    const res = await api("/api/dashboard/download", { ...params, what, format });
    const blob = await res.blob();
    const a = h("a", { href: URL.createObjectURL(blob), download: `${what}.${format}` });
    document.body.append(a); a.click(); a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10000);
  }
  function downloadButtons(what, paramsFn) {
    return h("div", { class: "row" },
      h("span", { class: "muted" }, `Download ${what}:`),
      ...["csv", "json"].map((format) => h("button", {
        type: "button", "data-download": `${what}-${format}`,
        onclick: () => download(what, format, paramsFn()).catch((e) => flash(e.message)),
      }, format.toUpperCase())));
  }
  function flash(message) {
    const note = h("p", { class: "error", role: "alert" }, message);
    view().prepend(note); setTimeout(() => note.remove(), 6000);
  }

  // ---------------------------------------------------------------- live stream + client-side aggregation
  const agg = {
    feed: [],                     // newest last
    perSecond: new Map(),         // second -> {events, errors}
    total: 0,
    seen: new Set(),              // recent event ids: the backfill and the live stream may overlap
    listeners: new Set(),
    add(event) {
      if (event.event_id) {
        if (this.seen.has(event.event_id)) return;
        this.seen.add(event.event_id);
        if (this.seen.size > 4 * FEED_MAX) this.seen.delete(this.seen.values().next().value);
      }
      this.total++;
      this.feed.push(event);
      if (this.feed.length > FEED_MAX) this.feed.splice(0, this.feed.length - FEED_MAX);
      const sec = Math.floor((event.timestamp || Date.now()) / 1000);
      const slot = this.perSecond.get(sec) || { events: 0, errors: 0 };
      slot.events++; if (event.event_type === "error") slot.errors++;
      this.perSecond.set(sec, slot);
      for (const fn of this.listeners) fn(event);
    },
    series(seconds) {
      const now = Math.floor(Date.now() / 1000);
      for (const k of this.perSecond.keys()) if (k < now - SERIES_S) this.perSecond.delete(k);
      const out = [];
      for (let s = now - seconds + 1; s <= now; s++) {
        const slot = this.perSecond.get(s) || { events: 0, errors: 0 };
        out.push({ t: s * 1000, events: slot.events, errors: slot.errors });
      }
      return out;
    },
  };

  let backfilled = false;
  async function backfill() {
    // The last two minutes, so the charts and the feed have a past the moment the page opens
    // (an event both fetched here and streamed is counted once, by its id).
    if (backfilled) return;
    const res = await getJSON("/api/events", { since: "2m", order: "desc", limit: 1000 });
    for (const e of res.events.reverse()) agg.add(e);
    backfilled = true;
  }

  const live = {
    ws: null, es: null, attempts: 0, timer: null, mode: "ws", wsFailures: 0,
    start() {
      const status = $("#conn");
      const setState = (state, text) => { status.dataset.state = state; status.textContent = text; };
      const keyParam = apiKey ? `&api_key=${encodeURIComponent(apiKey)}` : "";
      const onMessage = (msg) => {
        if (msg.type === "batch") { for (const m of msg.messages) onMessage(m); return; }
        if (msg.type === "event" && msg.event) agg.add(msg.event);
        else if (msg.type === "dropped") agg.dropped = (agg.dropped || 0) + msg.count;
      };
      const retry = () => {
        // Exponential backoff with jitter, capped at 30 s, so a restarting server is not stampeded.
        const delay = Math.min(30000, 500 * 2 ** this.attempts) * (0.75 + Math.random() / 2);
        this.attempts++;
        setState("offline", `offline, retrying in ${Math.round(delay / 1000)} s`);
        clearTimeout(this.timer);
        this.timer = setTimeout(() => this.start(), delay);
      };
      if (this.mode === "ws" && "WebSocket" in window) {
        const scheme = location.protocol === "https:" ? "wss" : "ws";
        const ws = new WebSocket(`${scheme}://${location.host}/ws?batch=true${keyParam}`);
        this.ws = ws;
        let opened = false;
        ws.onopen = () => { opened = true; this.wsFailures = 0; };
        ws.onmessage = (e) => {
          let msg; try { msg = JSON.parse(e.data); } catch (err) { return; }
          // Live only once the server has admitted the connection (it accepts first, then checks the key).
          if (msg.type === "connected") { this.attempts = 0; setState("live", "live (WebSocket)"); return; }
          if (msg.type === "error" && /auth|key/i.test(msg.message || "")) { this.stop(); setState("offline", "locked"); askForKey(); return; }
          onMessage(msg);
        };
        ws.onclose = (e) => {
          if (this.ws !== ws) return;
          this.ws = null;
          if (e.code === 4401 || e.code === 4403) { setState("offline", "locked"); return; }
          if (!opened && ++this.wsFailures >= 3) this.mode = "sse";  // a proxy that blocks WebSockets
          retry();
        };
      } else {
        const es = new EventSource(`/api/stream?channel=all${keyParam}`);
        this.es = es;
        es.addEventListener("connected", () => { this.attempts = 0; setState("live", "live (SSE)"); });
        es.onmessage = (e) => { try { onMessage(JSON.parse(e.data)); } catch (err) { /* ignore */ } };
        es.addEventListener("dropped", (e) => { try { onMessage(JSON.parse(e.data)); } catch (err) { /* */ } });
        es.onerror = () => { es.close(); if (this.es === es) { this.es = null; this.mode = "ws"; retry(); } };
      }
    },
    stop() {
      clearTimeout(this.timer);
      if (this.ws) { const ws = this.ws; this.ws = null; ws.close(); }
      if (this.es) { this.es.close(); this.es = null; }
    },
    restart() { this.stop(); this.attempts = 0; this.start(); },
  };

  // ---------------------------------------------------------------- charts (SVG with text alternatives)
  function lineChart(points, series, { title, height = 160, band, fmt = fmtInt, summary: given } = {}) {
    const W = 600, H = height, P = 28;
    // Live counts keep a floor of 1 (an idle chart is flat, not noise); forecasts scale to their own values.
    const maxY = Math.max(band ? 1e-9 : 1, ...points.flatMap((p) => series.map((s) => p[s.key] || 0)),
      ...(band ? points.map((p) => p[band.high] || 0) : []));
    const x = (i) => P + (i * (W - P - 6)) / Math.max(1, points.length - 1);
    const y = (v) => H - 18 - ((H - 30) * v) / maxY;
    const NS = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(NS, "svg");
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`); svg.setAttribute("class", "chart");
    svg.setAttribute("role", "img");
    const last = points[points.length - 1] || {};
    const summary = given || `${title}: ${series.map((s) => `${s.label} now ${fmt(last[s.key] || 0)}, ` +
      `peak ${fmt(Math.max(0, ...points.map((p) => p[s.key] || 0)))}`).join("; ")} over ${points.length} points.`;
    svg.setAttribute("aria-label", summary);
    const add = (tag, attrs, text) => {
      const el = document.createElementNS(NS, tag);
      for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
      if (text !== undefined) el.textContent = text;
      svg.append(el); return el;
    };
    add("title", {}, summary);
    add("line", { x1: P, y1: H - 18, x2: W, y2: H - 18, class: "axis" });
    add("text", { x: 2, y: 12 }, fmt(maxY));
    add("text", { x: 2, y: H - 20 }, "0");
    if (points.length) {
      add("text", { x: P, y: H - 4 }, fmtClock(points[0].t));
      add("text", { x: W - 60, y: H - 4 }, fmtClock(last.t));
    }
    if (band && points.length > 1) {
      const top = points.map((p, i) => `${x(i)},${y(p[band.high] || 0)}`);
      const bottom = points.map((p, i) => `${x(i)},${y(p[band.low] || 0)}`).reverse();
      add("polygon", { points: [...top, ...bottom].join(" "), fill: "var(--band)", stroke: "none" });
    }
    series.forEach((s, n) => {
      const d = points.map((p, i) => `${i ? "L" : "M"}${x(i).toFixed(1)},${y(p[s.key] || 0).toFixed(1)}`).join("");
      add("path", { d, fill: "none", stroke: `var(--chart-${n + 1})`, "stroke-width": 2 });
    });
    return svg;
  }
  function barList(entries, label) {
    const max = Math.max(1, ...entries.map(([, v]) => v));
    const list = h("ul", { class: "bars", "aria-label": label });
    for (const [name, value] of entries) {
      list.append(h("li", {}, h("span", { class: "ellipsis" }, name),
        h("span", { class: "bar", style: `width:${(100 * value) / max}%`, "aria-hidden": "true" }),
        h("span", { class: "num" }, fmtInt(value))));
    }
    if (!entries.length) list.append(h("li", { class: "muted" }, "nothing yet"));
    return list;
  }

  // ---------------------------------------------------------------- pages
  let pageTimer = null;       // the current page's polling timer
  let pageRedraw = null;      // the current page's live redraw, called at most every REDRAW_MS
  let dirty = false;
  agg.listeners.add(() => { dirty = true; });
  setInterval(() => { if (dirty && pageRedraw) { dirty = false; pageRedraw(); } }, REDRAW_MS);

  function panel(title, ...children) {
    return h("section", { class: "panel", "aria-label": title }, h("h2", {}, title), ...children);
  }
  function kpi(id, label) {
    return h("div", { class: "panel kpi" }, h("div", { class: "value", id: `kpi-${id}` }, "–"),
      h("div", { class: "label" }, label));
  }
  const setText = (sel, text) => { const el = $(sel); if (el) el.textContent = text; };

  async function pageOverview() {
    view().replaceChildren(
      h("h1", {}, "Overview"),
      h("div", { class: "grid kpis" }, kpi("epm", "events / min"), kpi("active", "active sessions"),
        kpi("errrate", "error rate (1 h)"), kpi("p50", "p50 session duration"),
        kpi("p95", "p95 session duration"), kpi("total", "events stored")),
      h("div", { class: "grid two" },
        panel("Events per second (last 2 min, live)", h("div", { id: "chart-rate" })),
        panel("Errors per second (last 2 min, live)", h("div", { id: "chart-errors" }))),
      h("div", { class: "grid two" },
        panel("Top agents (24 h)", h("div", { id: "top-agents" })),
        panel("Events by type (24 h)", h("div", { id: "by-type" }))),
      h("p", { class: "note", id: "overview-note" }));
    const drawCharts = () => {
      const pts = agg.series(120);
      const rate = $("#chart-rate"), errs = $("#chart-errors");
      if (rate) rate.replaceChildren(lineChart(pts, [{ key: "events", label: "events/s" }], { title: "Events per second" }));
      if (errs) errs.replaceChildren(lineChart(pts, [{ key: "errors", label: "errors/s" }], { title: "Errors per second" }));
    };
    pageRedraw = drawCharts; drawCharts();
    const refresh = async () => {
      const [minute, hour, day, types, recent] = await Promise.all([
        getJSON("/api/stats", { since: "1m" }), getJSON("/api/stats", { since: "1h" }),
        getJSON("/api/stats", { since: "24h" }), getJSON("/api/stats", { since: "24h", group_by: "event_type" }),
        getJSON("/api/sessions", { status: "completed", limit: 500 })]);
      setText("#kpi-epm", fmtInt(minute.total_events));
      setText("#kpi-active", fmtInt(day.active_sessions));
      setText("#kpi-errrate", hour.total_events ? `${((100 * hour.error_events) / hour.total_events).toFixed(1)} %` : "–");
      const durations = recent.sessions.map((s) => s.duration).filter((d) => d !== null).sort((a, b) => a - b);
      setText("#kpi-p50", fmtMs(percentile(durations, 50)));
      setText("#kpi-p95", fmtMs(percentile(durations, 95)));
      const all = await getJSON("/api/stats");
      setText("#kpi-total", fmtInt(all.total_events));
      const agents = Object.entries(day.agents).sort((a, b) => b[1] - a[1]).slice(0, 8);
      const top = $("#top-agents"); if (top) top.replaceChildren(barList(agents, "events per agent, last 24 hours"));
      const byType = (types.groups || []).map((g) => [g.key || "–", g.events]).sort((a, b) => b[1] - a[1]);
      const bt = $("#by-type"); if (bt) bt.replaceChildren(barList(byType, "events per type, last 24 hours"));
      setText("#overview-note", `Durations over the last ${durations.length} completed sessions. ` +
        `Updated ${fmtClock(Date.now())}.`);
    };
    const mine = renderSeq;
    await refresh();
    if (mine !== renderSeq) return;  // the user moved on while this page loaded
    pageTimer = setInterval(() => refresh().catch(() => {}), 5000);
  }

  function feedMatches(e, f) {
    return (!f.agent || e.category === f.agent) && (!f.type || e.event_type === f.type) &&
      (!f.session || e.session_id === f.session);
  }
  async function pageLive(params) {
    const f = { agent: params.get("agent") || "", type: params.get("type") || "", session: params.get("session") || "" };
    let paused = false, seenAtPause = 0;
    const body = h("tbody", { id: "feed-body" });
    const pauseBtn = h("button", { type: "button", id: "pause", "aria-pressed": "false" }, "Pause");
    const status = h("span", { class: "muted", id: "feed-status", role: "status" });
    const input = (name, label, value, list) => h("label", {}, label,
      h("input", { name, value, list, id: `feed-${name}`, onchange: (e) => { f[name] = e.target.value.trim();
        setParams("live", f, true); draw(); } }));
    view().replaceChildren(
      h("h1", {}, "Live feed"),
      h("form", { class: "filters", onsubmit: (e) => e.preventDefault(), "aria-label": "Live feed filters" },
        input("agent", "Agent", f.agent), h("label", {}, "Type",
          h("select", { id: "feed-type", onchange: (e) => { f.type = e.target.value; setParams("live", f, true); draw(); } },
            ...["", "start", "stream", "end", "error", "custom"].map((t) =>
              h("option", { value: t, selected: t === f.type }, t || "any")))),
        input("session", "Session id", f.session), pauseBtn, status),
      h("div", { class: "panel table-wrap" }, h("table", { "aria-label": "Live events, newest first" },
        h("thead", {}, h("tr", {}, h("th", {}, "time"), h("th", {}, "type"), h("th", {}, "agent"),
          h("th", {}, "session"), h("th", {}, "content"))), body)),
      // Every stored event matching the feed's filter (not only the last few hundred on screen), newest first.
      h("div", { class: "panel", style: "margin-top:14px" }, downloadButtons("events",
        () => ({ category: f.agent, event_type: f.type, session_id: f.session }))));
    pauseBtn.addEventListener("click", () => {
      paused = !paused; seenAtPause = agg.total;
      pauseBtn.setAttribute("aria-pressed", String(paused)); pauseBtn.textContent = paused ? "Resume" : "Pause";
      draw(true);
    });
    function draw(force) {
      if (paused && !force) { status.textContent = `paused; ${fmtInt(agg.total - seenAtPause)} new since`; return; }
      const rows = [];
      for (let i = agg.feed.length - 1; i >= 0 && rows.length < 200; i--) {
        const e = agg.feed[i];
        if (!feedMatches(e, f)) continue;
        rows.push(h("tr", { class: "feed-row", "data-type": e.event_type },
          h("td", {}, fmtClock(e.timestamp)), h("td", {}, h("span", { class: `badge ${e.event_type}` }, e.event_type)),
          h("td", {}, e.category || "–"),
          h("td", {}, e.session_id ? h("a", { href: `#/sessions/${encodeURIComponent(e.session_id)}`, title: e.session_id },
            shortId(e.session_id)) : "–"),
          h("td", { class: "ellipsis" }, e.stream_data || e.label || (e.metadata && e.metadata.status) || "")));
      }
      if (!rows.length) rows.push(h("tr", {}, h("td", { colspan: 5, class: "muted" }, "Waiting for events…")));
      if (!paused) status.textContent = `${fmtInt(agg.total)} events received`;
      body.replaceChildren(...rows);
    }
    pageRedraw = () => draw(false); draw(true);
  }

  async function pageSessions(params) {
    const f = { q: params.get("q") || "", status: params.get("status") || "", agent: params.get("agent") || "",
      since: params.get("since") || "", sort: params.get("sort") || "start_time", order: params.get("order") || "desc",
      page: Number(params.get("page") || 1) };
    const apply = (changes) => {
      const next = { ...f, ...changes, page: changes.page || 1 };
      if (next.sort === "start_time") next.sort = "";  // the default stays out of the URL
      setParams("sessions", next);
    };
    const form = h("form", { class: "filters", "aria-label": "Session filters", onsubmit: (e) => {
      e.preventDefault(); const d = new FormData(e.target);
      const [sort, order] = d.get("sort").split(":");
      apply({ q: d.get("q").trim(), status: d.get("status"), agent: d.get("agent").trim(), since: d.get("since"), sort, order });
    } },
    h("label", {}, "Search prompt or id", h("input", { name: "q", id: "s-q", type: "search", value: f.q })),
    h("label", {}, "Status", h("select", { name: "status", id: "s-status" },
      ...["", "active", "completed", "error"].map((s) => h("option", { value: s, selected: s === f.status }, s || "any")))),
    h("label", {}, "Agent", h("input", { name: "agent", id: "s-agent", value: f.agent })),
    h("label", {}, "Started", h("select", { name: "since", id: "s-since" },
      ...[["", "any time"], ["1h", "last hour"], ["24h", "last 24 h"], ["7d", "last 7 days"], ["30d", "last 30 days"]]
        .map(([v, t]) => h("option", { value: v, selected: v === f.since }, t)))),
    // The same sorts as the column headers, for narrow screens where some columns are hidden.
    h("label", {}, "Sort", h("select", { name: "sort", id: "s-sort" },
      ...[["start_time:desc", "newest first"], ["start_time:asc", "oldest first"], ["duration:desc", "longest first"],
        ["duration:asc", "shortest first"], ["event_count:desc", "most events"], ["event_count:asc", "fewest events"],
        ["error_count:desc", "most errors"], ["error_count:asc", "fewest errors"]]
        .map(([v, t]) => h("option", { value: v, selected: v === `${f.sort}:${f.order}` }, t)))),
    h("button", { type: "submit", class: "primary" }, "Apply"));
    // The download is what the table shows: same filter, same sort, every page of it.
    const dlParams = () => ({ status: f.status, category: f.agent, since: f.since,
      sort: f.sort === "start_time" ? "" : f.sort, order: f.order });
    view().replaceChildren(h("h1", {}, "Sessions"), form,
      h("div", { class: "panel" }, h("div", { class: "table-wrap", id: "sessions-table" }, h("p", { class: "muted" }, "Loading…")),
        h("div", { class: "pager", id: "pager" })),
      h("div", { class: "panel", style: "margin-top:14px" }, downloadButtons("sessions", dlParams)));
    let sessions, more;
    if (f.q) {
      // Search: an exact session id opens it; otherwise the prompt text search of the store (its text index).
      try {
        const one = await getJSON(`/api/sessions/${encodeURIComponent(f.q)}`, { with_events: false });
        location.hash = `#/sessions/${encodeURIComponent(one.id)}`; return;
      } catch (e) { if (e.status && e.status !== 404 && e.status !== 400) throw e; }
      const starts = await getJSON("/api/events", { event_type: "start", contains: f.q, category: f.agent, since: f.since,
        order: "desc", limit: PAGE_SIZE, offset: (f.page - 1) * PAGE_SIZE });
      const found = await Promise.all(starts.events.map((e) =>
        getJSON(`/api/sessions/${encodeURIComponent(e.session_id)}`, { with_events: false }).catch(() => null)));
      sessions = found.filter((s) => s && (!f.status || s.status === f.status));
      more = starts.events.length === PAGE_SIZE;
    } else {
      // "Next" goes by the cursor of the page before (an index seek, ~1 ms at any depth); a page opened
      // from a URL or "Previous" goes by offset, which costs more the deeper it is.
      const listing = JSON.stringify([f.status, f.agent, f.since, f.sort, f.order]);
      const cursor = sessionCursors.get(`${listing}|${f.page}`);
      const res = await getJSON("/api/sessions", { status: f.status, category: f.agent, since: f.since,
        sort: f.sort === "start_time" ? "" : f.sort, order: f.order, limit: PAGE_SIZE,
        ...(cursor ? { cursor } : { offset: (f.page - 1) * PAGE_SIZE }) });
      sessions = res.sessions; more = res.next_cursor !== undefined || res.next_offset !== undefined;
      if (res.next_cursor) sessionCursors.set(`${listing}|${f.page + 1}`, res.next_cursor);
    }
    // Sorting happens in the store over every matching session (never just this page); the sort is in the URL.
    // A search lists its matches newest first: the column headers sort the listing, not the search.
    const sortHeader = (key, label, cls) => {
      const active = !f.q && f.sort === key;
      const dir = active ? f.order : null;
      const words = { start_time: ["oldest", "newest"], duration: ["shortest", "longest"],
        event_count: ["fewest events", "most events"], error_count: ["fewest errors", "most errors"] }[key];
      const btn = h("button", { type: "button", class: "sort", id: `sort-${key.split("_")[0]}`, disabled: !!f.q,
        "aria-label": active ? `${label}, sorted ${dir === "asc" ? words[0] : words[1]} first; activate to reverse`
          : `Sort by ${label.toLowerCase()}, ${words[1]} first`,
        onclick: () => apply({ sort: key, order: active && f.order === "desc" ? "asc" : "desc" }) },
      label, h("span", { "aria-hidden": "true", class: "arrow" }, active ? (dir === "asc" ? " ▲" : " ▼") : " ↕"));
      return h("th", { class: cls, "aria-sort": active ? (dir === "asc" ? "ascending" : "descending") : null }, btn);
    };
    const table = h("table", { "aria-label": "Sessions" },
      h("thead", {}, h("tr", {}, sortHeader("start_time", "Started"),
        h("th", {}, "agent"), h("th", { class: "hide-narrow" }, "mode"), h("th", {}, "status"),
        sortHeader("duration", "Duration", "num"), sortHeader("event_count", "Events", "num hide-narrow"),
        sortHeader("error_count", "Errors", "num hide-narrow"), h("th", { class: "hide-narrow" }, "prompt"))),
      h("tbody", {}, ...sessions.map((s) => h("tr", { class: "session-row", "data-id": s.id },
        h("td", {}, h("a", { href: `#/sessions/${encodeURIComponent(s.id)}` }, fmtTime(s.start_time))),
        h("td", {}, s.category || "–"), h("td", { class: "hide-narrow" }, s.action || "–"),
        h("td", {}, h("span", { class: `badge ${s.status}` }, s.status)),
        h("td", { class: "num" }, fmtMs(s.duration)), h("td", { class: "num hide-narrow" }, fmtInt(s.event_count)),
        h("td", { class: "num hide-narrow" }, fmtInt(s.error_count)),
        h("td", { class: "ellipsis hide-narrow" }, s.label || "")))));
    if (!sessions.length) table.append(h("caption", { class: "muted" }, "No sessions match these filters."));
    $("#sessions-table").replaceChildren(table);
    $("#pager").replaceChildren(
      h("button", { type: "button", id: "prev", disabled: f.page <= 1, onclick: () => apply({ page: f.page - 1 }) }, "‹ Previous"),
      h("span", { id: "page-label" }, `page ${f.page}`),
      h("button", { type: "button", id: "next", disabled: !more, onclick: () => apply({ page: f.page + 1 }) }, "Next ›"));
  }

  function reassemble(events) {
    // Chunks in time order (the store keeps insertion order for equal timestamps), joined as they were streamed.
    return events.filter((e) => e.event_type === "stream" && e.stream_data).map((e) => e.stream_data).join("");
  }
  async function pageSession(id) {
    const mine = renderSeq;
    const draw = async () => {
      const s = await getJSON(`/api/sessions/${encodeURIComponent(id)}`, { with_events: true });
      if (mine !== renderSeq) return;
      const events = s.events || [];
      const start = s.start_time || (events[0] && events[0].timestamp) || 0;
      const errors = events.filter((e) => e.event_type === "error");
      const copyBtn = h("button", { type: "button", id: "copy-json", onclick: async () => {
        const text = JSON.stringify(s, null, 2);
        try { await navigator.clipboard.writeText(text); copyBtn.textContent = "Copied"; } catch (e) {
          const area = h("textarea", { "aria-label": "Session JSON" }, text);
          document.body.append(area); area.select(); document.execCommand("copy"); area.remove();
          copyBtn.textContent = "Copied";
        }
        setTimeout(() => { copyBtn.textContent = "Copy session as JSON"; }, 2000);
      } }, "Copy session as JSON");
      view().replaceChildren(...[
        h("p", {}, h("a", { href: "#/sessions" }, "‹ Sessions")),
        h("h1", {}, `Session ${s.id}`),
        h("div", { class: "grid two" },
          panel("Summary", h("dl", { class: "meta", id: "session-meta" },
            ...[["agent", s.category], ["mode", s.action], ["status", s.status], ["started", fmtTime(s.start_time)],
              ["ended", fmtTime(s.end_time)], ["duration", fmtMs(s.duration)], ["events", fmtInt(s.event_count)],
              ["stream chunks", fmtInt(s.stream_count)], ["errors", fmtInt(s.error_count)], ["prompt", s.label],
              ["sandbox", s.sandbox_id], ["repository", s.repo_url]]
              .flatMap(([k, v]) => [h("dt", {}, k), h("dd", { "data-field": k }, v === null || v === undefined ? "–" : v)])),
            h("h2", { style: "margin-top:12px" }, "Metadata"), h("pre", {}, JSON.stringify(s.metadata || {}, null, 2)),
            h("div", { class: "row", style: "margin-top:12px" }, copyBtn),
            h("div", { style: "margin-top:8px" }, downloadButtons("events", () => ({ session_id: s.id, order: "asc" })))),
          panel("Timeline", h("ol", { class: "timeline", id: "timeline" }, ...events.map((e) =>
            h("li", { class: `t-${e.event_type}` }, h("span", { class: "at" }, `+${fmtMs((e.timestamp || start) - start)}`),
              h("span", { class: `badge ${e.event_type}` }, e.event_type), " ",
              e.event_type === "stream" ? h("span", { class: "muted" }, `${(e.stream_data || "").length} chars`)
                : (e.label || (e.metadata && e.metadata.status) || "")))))),
        panel("Streamed output, reassembled in order", h("pre", { id: "stream-output", tabindex: "0" },
          reassemble(events) || "(no streamed output)")),
        errors.length ? panel("Errors", ...errors.map((e) => h("div", { class: "error-item" },
          h("p", { class: "error" }, `${fmtClock(e.timestamp)} ${e.label || "error"}`),
          h("pre", {}, (e.metadata && (e.metadata.stack || (e.metadata.error && e.metadata.error.stack))) ||
            JSON.stringify(e.metadata || {}, null, 2))))) : null].filter(Boolean));
    };
    await draw();
    if (mine !== renderSeq) return;
    // While the session runs, new events of it redraw the page (throttled to one fetch a second).
    let pending = false;
    pageRedraw = () => {
      if (pending || !agg.feed.length || agg.feed[agg.feed.length - 1].session_id !== id) return;
      pending = true; setTimeout(() => { pending = false; draw().catch(() => {}); }, 1000);
    };
  }

  function renderInsightList(items, describe) {
    if (!items || !items.length) return h("p", { class: "muted" }, "None.");
    return h("ul", {}, ...items.map((item) => h("li", {}, describe(item))));
  }
  // The series /api/predictions forecasts, how to show their values, and what they are.
  const PREDICTED = {
    throughput: { label: "Events per minute", fmt: (v) => (v < 10 ? v.toFixed(1) : fmtInt(Math.round(v))) },
    error_rate: { label: "Error rate", fmt: (v) => `${v.toFixed(1)} %` },
    response_time: { label: "Response time", fmt: fmtMs },
    session_duration: { label: "Session duration", fmt: fmtMs },
  };
  const FORECAST_MIN = 60;

  function predictionView(p) {
    const meta = PREDICTED[p.metric] || { label: p.metric, fmt: (v) => String(Math.round(v * 100) / 100) };
    const box = h("div", { class: "prediction", "data-metric": p.metric }, h("h3", {}, meta.label));
    if (p.error || !(p.values || []).length) {
      box.append(h("p", { class: "muted" }, `No forecast yet: ${p.error || "no data"}.`));
      return box;
    }
    const pts = p.timestamps.map((t, i) => ({ t, value: p.values[i], low: p.lower[i], high: p.upper[i] }));
    const first = pts[0], last = pts[pts.length - 1];
    const widest = pts.reduce((a, b) => (b.high - b.low > a.high - a.low ? b : a));
    // The chart's text alternative says what a sighted reader takes from it: where the line goes, how wide the band is.
    const summary = `${meta.label}, forecast for the next ${FORECAST_MIN} minutes: ${meta.fmt(first.value)} at ` +
      `${fmtClock(first.t)} to ${meta.fmt(last.value)} at ${fmtClock(last.t)}; 95 % band from ` +
      `${meta.fmt(last.low)} to ${meta.fmt(last.high)} at the end (widest ${meta.fmt(widest.low)} to ${meta.fmt(widest.high)}).`;
    box.append(h("div", { class: "chart-box" }, lineChart(pts, [{ key: "value", label: "forecast" }],
      { title: meta.label, band: { low: "low", high: "high" }, fmt: meta.fmt, summary })));
    box.append(h("p", { class: "note" }, h("span", { class: "legend line", "aria-hidden": "true" }), " forecast ",
      h("span", { class: "legend band", "aria-hidden": "true" }), " 95 % band",
      p.backtest && p.backtest.points ? ` · backtest on the last ${p.backtest.points} minutes: mean error ` +
        `${meta.fmt(p.backtest.mae || 0)}, inside the band ${Math.round(100 * (p.backtest.coverage ?? 0))} % of the time` : "",
      p.method ? ` · ${p.method}` : ""));
    const step = Math.max(1, Math.ceil(pts.length / 12));
    box.append(h("details", {}, h("summary", {}, "Forecast values"),
      h("table", { "aria-label": `${meta.label} forecast` },
        h("thead", {}, h("tr", {}, h("th", {}, "time"), h("th", { class: "num" }, "forecast"),
          h("th", { class: "num" }, "low (95 %)"), h("th", { class: "num" }, "high (95 %)"))),
        h("tbody", {}, ...pts.filter((_, i) => i % step === 0 || i === pts.length - 1).map((pt) => h("tr", {},
          h("td", {}, fmtClock(pt.t)), h("td", { class: "num" }, meta.fmt(pt.value)),
          h("td", { class: "num" }, meta.fmt(pt.low)), h("td", { class: "num" }, meta.fmt(pt.high))))))));
    return box;
  }

  async function pageAnalytics() {
    const mine = renderSeq;
    view().replaceChildren(h("h1", {}, "Analytics"), h("p", { class: "muted" }, "Loading…"));
    const soft = (e) => { if (!e.status) throw e; return null; };  // one failing source leaves the others
    const [insights, predicted, alerted, metrics] = await Promise.all([
      getJSON("/api/insights").catch(soft),
      getJSON("/api/predictions", { metric: Object.keys(PREDICTED).join(","), minutes_ahead: FORECAST_MIN }).catch(soft),
      getJSON("/api/alerts", { limit: 20 }).catch(soft),
      getJSON("/api/metrics", { since: "24h" }).catch(soft)]);
    const sections = [];
    const available = (insights && insights.available !== false) || predicted;
    if (!available) {
      sections.push(h("p", { class: "panel", id: "analytics-off" }, "Analytics is not enabled on this server, so there " +
        "are no anomalies, predictions or alerts yet. Enable it in the configuration (analytics.enabled) and this page " +
        "fills in as results arrive."));
    } else {
      const num = (v) => (typeof v === "number" ? String(Math.round(v * 100) / 100) : v);
      const seen = (a) => (a.observed !== undefined ? a.observed : a.value);
      // Anomalies (observed, expected, kind, description) and alerts (value, threshold, message) alike.
      const describe = (a) => [a.metric || a.name || a.type || "anomaly", a.kind ? ` ${a.kind}` : "",
        seen(a) !== undefined && seen(a) !== null ? ` = ${num(seen(a))}` : "",
        a.expected !== undefined ? ` (expected ${num(a.expected)})` : "",
        a.threshold !== undefined && a.threshold !== null ? ` (threshold ${num(a.threshold)})` : "",
        a.severity ? ` · ${a.severity}` : "", a.timestamp ? ` · ${fmtTime(a.timestamp)}` : "",
        a.message || a.description ? ` · ${a.message || a.description}` : ""].join("");
      sections.push(panel("Anomalies", renderInsightList(insights && insights.anomalies, describe)));
      const forecasts = Object.values((predicted && predicted.predictions) || {});
      const predictionPanel = panel("Predictions", h("p", { class: "note" }, `The next ${FORECAST_MIN} minutes of each ` +
        "series, from its history, with the 95 % band the value should stay in."));
      predictionPanel.id = "predictions";
      if (!forecasts.length) predictionPanel.append(h("p", { class: "muted" }, "None."));
      for (const p of forecasts) predictionPanel.append(predictionView(p));
      sections.push(predictionPanel);
      // Alerts: the persisted history (/api/alerts), else what this server raised recently (insights).
      const alerts = (alerted && alerted.alerts && alerted.alerts.length ? alerted.alerts : (insights && insights.alerts)) || [];
      sections.push(panel("Alerts", renderInsightList(alerts, describe)));
      if (insights && (insights.recommendations || []).length) {
        sections.push(panel("Recommendations", renderInsightList(insights.recommendations,
          (r) => (typeof r === "string" ? r : r.message || r.title || JSON.stringify(r)))));
      }
    }
    if (metrics && metrics.stats) {
      const st = metrics.stats;
      sections.push(panel("Last 24 hours", h("dl", { class: "meta" },
        h("dt", {}, "events"), h("dd", {}, fmtInt(st.total_events)), h("dt", {}, "sessions"), h("dd", {}, fmtInt(st.total_sessions)),
        h("dt", {}, "errors"), h("dd", {}, fmtInt(st.error_events)),
        h("dt", {}, "average session"), h("dd", {}, fmtMs(st.avg_session_duration_ms)))));
    }
    if (mine !== renderSeq) return;
    view().replaceChildren(h("h1", {}, "Analytics"), h("div", { class: "grid" }, ...sections));
    pageTimer = setTimeout(() => { if (route().page === "analytics") render(); }, 15000);
  }

  async function pageHealth() {
    const mine = renderSeq;
    const [health, info] = await Promise.all([getJSON("/api/health"), getJSON("/api/dashboard/info")]);
    if (mine !== renderSeq) return;
    const store = (health.stores || [])[0] || {};
    const writer = health.writer || {};
    const rows = [
      ["status", health.status], ["store", `${store.backend || store.name || "–"} ${store.location || ""}`],
      ["store size", fmtBytes(store.size_bytes)], ["events stored", fmtInt(store.events)],
      ["sessions stored", fmtInt(store.sessions)], ["schema version", store.schema_version],
      ["queue depth", `${fmtInt((health.queue || {}).depth)} of ${fmtInt((health.queue || {}).capacity)}`],
      ["events dropped", fmtInt(health.dropped_total)],
      ["flush latency (last / avg / max)", `${fmtMs(writer.last_batch_ms)} / ${fmtMs(writer.avg_batch_ms)} / ${fmtMs(writer.max_batch_ms)}`],
      ["live subscribers", fmtInt((health.streams || {}).subscribers)],
      ["live messages dropped", fmtInt((health.streams || {}).dropped)],
      ["retention", (info.retention || []).map((r) => `${r.store}: ${r.prune_days ? `${r.prune_days} days` : "kept forever"}` +
        `${r.max_size_mb ? `, at most ${r.max_size_mb} MB` : ""}`).join("; ") || "kept forever"],
      ["auth", info.auth ? "on" : "off"], ["vibekit-telemetry version", info.version],
      ["service", `${info.service.name} ${info.service.version || ""}`],
    ];
    view().replaceChildren(h("h1", {}, "Health and settings"),
      h("div", { class: "grid two" },
        panel("Pipeline and store", h("dl", { class: "meta", id: "health-meta" },
          ...rows.flatMap(([k, v]) => [h("dt", {}, k), h("dd", { "data-field": k }, v ?? "–")]))),
        panel("Drops by reason", h("dl", { class: "meta" }, ...Object.entries(health.dropped || {})
          .flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, fmtInt(v))]))),
        panel("Last error", h("pre", {}, health.last_error || "none"))),
      h("p", { class: "note" }, `Updated ${fmtClock(Date.now())}; refreshes every 5 s.`));
    pageTimer = setTimeout(() => { if (route().page === "health") render(); }, 5000);
  }

  // ---------------------------------------------------------------- render loop
  const PAGES = { overview: pageOverview, live: pageLive, sessions: pageSessions, analytics: pageAnalytics, health: pageHealth };
  let renderSeq = 0;
  async function render() {
    clearInterval(pageTimer); clearTimeout(pageTimer); pageTimer = null; pageRedraw = null;
    const seq = ++renderSeq;
    const { page, id, params } = route();
    for (const a of document.querySelectorAll("nav a")) {
      if (a.dataset.page === page) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
    }
    document.title = `${page[0].toUpperCase()}${page.slice(1)} · vibekit telemetry`;
    try {
      await backfill();
      if (page === "sessions" && id) await pageSession(id);
      else await (PAGES[page] || pageOverview)(params);
    } catch (e) {
      if (seq !== renderSeq) return;
      view().replaceChildren(h("h1", {}, "Something went wrong"), h("p", { class: "error", role: "alert" }, e.message),
        h("button", { type: "button", onclick: render }, "Retry"));
    }
  }

  function setupTheme() {
    const saved = localStorage.getItem(THEME_STORE);
    const dark = saved ? saved === "dark" : matchMedia("(prefers-color-scheme: dark)").matches;
    document.documentElement.dataset.theme = dark ? "dark" : "light";
    $("#theme").addEventListener("click", () => {
      const next = document.documentElement.dataset.theme === "dark" ? "light" : "dark";
      document.documentElement.dataset.theme = next; localStorage.setItem(THEME_STORE, next);
      if (pageRedraw) pageRedraw();
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    setupTheme(); setupAuth();
    window.addEventListener("hashchange", () => { render(); view().focus({ preventScroll: true }); });
    live.start();
    render();
  });
  // For tests and the curious: the live aggregate.
  window.vibekitDashboard = { agg, live };
})();
