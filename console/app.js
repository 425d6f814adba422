// wagate operator console: plain JS, no dependencies. The API key lives in
// sessionStorage only; every call sends it as a Bearer token. Live status
// comes from GET /v1/events/stream, read with fetch (EventSource cannot
// send an Authorization header).
"use strict";

const $ = (id) => document.getElementById(id);
const state = { key: sessionStorage.getItem("wagate.key"), instances: new Map(), selected: null, qrTimer: null, stream: null, lastEventId: null };

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  Object.assign(node, props || {});
  for (const c of children) node.append(c);
  return node;
}

function notice(text) { $("notice").textContent = text || ""; }

async function api(method, path, body) {
  const headers = { Authorization: "Bearer " + state.key };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const resp = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await resp.text();
  const data = text ? JSON.parse(text) : null;
  if (!resp.ok) {
    if (resp.status === 401) signOut();
    throw new Error((data && (data.detail || data.title)) || resp.statusText);
  }
  return data;
}

function act(fn) {
  return async (ev) => {
    if (ev) ev.preventDefault();
    notice("");
    try { await fn(ev); } catch (e) { notice(e.message); }
  };
}

// ---- sign in -------------------------------------------------------------
function signOut() {
  sessionStorage.removeItem("wagate.key");
  state.key = null;
  if (state.stream) state.stream.abort();
  $("signin").hidden = false;
  $("instances").hidden = true;
  $("detail").hidden = true;
  $("signout").hidden = true;
  $("live").textContent = "offline";
}

async function signIn() {
  await loadInstances();
  sessionStorage.setItem("wagate.key", state.key);
  $("signin").hidden = true;
  $("instances").hidden = false;
  $("signout").hidden = false;
  openStream();
}

// ---- instances -----------------------------------------------------------
async function loadInstances() {
  const page = await api("GET", "/v1/instances?limit=500");
  state.instances.clear();
  for (const i of page.items) state.instances.set(i.id, i);
  renderInstances();
}

function renderInstances() {
  const rows = $("instance-rows");
  rows.replaceChildren();
  for (const i of state.instances.values()) {
    const open = el("button", { type: "button", className: "secondary", textContent: "Open" });
    open.setAttribute("aria-label", "Open " + (i.name || i.id));
    open.addEventListener("click", act(() => select(i.id)));
    const status = el("td", { className: "status-" + i.status, textContent: i.status });
    status.dataset.testid = "status-" + i.id;
    rows.append(el("tr", {}, el("td", { textContent: i.name || i.id.slice(0, 8) }), status,
      el("td", { textContent: i.phone_number ? "+" + i.phone_number : "" }), el("td", {}, open)));
  }
}

async function select(id) {
  state.selected = id;
  const i = await api("GET", "/v1/instances/" + id);
  state.instances.set(id, i);
  $("detail").hidden = false;
  $("detail-title").textContent = "Instance " + (i.name || i.id);
  $("rename").value = i.name || "";
  $("pair-code").textContent = "";
  $("hook-secret").textContent = "";
  renderDetail();
  await Promise.all([loadMessages(), loadEvents(), loadHooks()]);
  if (i.status === "qr_pending") await showQr();
  $("detail").scrollIntoView();
}

function renderDetail() {
  const i = state.instances.get(state.selected);
  if (!i) return;
  $("detail-status").textContent = i.status;
  $("detail-status").className = "status-" + i.status;
  $("detail-number").textContent = i.status === "online" && i.phone_number ? "as +" + i.phone_number : "";
  if (i.status !== "qr_pending") hideQr();
}

async function loadMessages() {
  const page = await api("GET", `/v1/instances/${state.selected}/messages?limit=20`);
  const list = $("messages");
  list.replaceChildren(...page.items.map((m) => el("li", { textContent: `${m.created_at} ${m.kind} to ${m.to}: ${m.status}` })));
  if (!page.items.length) list.append(el("li", { className: "empty", textContent: "No messages yet." }));
}

async function loadEvents() {
  // The newest events: page to the end of the cursor (small instances).
  let after = null, items = [];
  for (let n = 0; n < 20; n++) {
    const page = await api("GET", `/v1/instances/${state.selected}/events?limit=500` + (after ? "&after=" + after : ""));
    items = items.concat(page.items);
    if (!page.next_after) break;
    after = page.next_after;
  }
  const list = $("events");
  list.replaceChildren();
  for (const e of items.slice(-20).reverse()) addEventLine(e, false);
  if (!items.length) list.append(el("li", { className: "empty", textContent: "No events yet." }));
}

function addEventLine(e, prepend) {
  const line = el("li", { textContent: `${e.timestamp} ${e.type}` + (e.data && e.data.status ? ` (${e.data.status})` : "") });
  const empty = $("events").querySelector(".empty");
  if (empty) empty.remove();
  if (prepend) $("events").prepend(line); else $("events").append(line);
}

// ---- pairing -------------------------------------------------------------
function hideQr() {
  $("qr-box").hidden = true;
  clearInterval(state.qrTimer);
}

function showQrView(qr) {
  $("qr").src = qr.data_url;
  $("qr").dataset.attempt = qr.attempt;
  $("qr-box").hidden = false;
  clearInterval(state.qrTimer);
  const tick = () => {
    const left = Math.max(0, Math.round((Date.parse(qr.expires_at) - Date.now()) / 1000));
    $("qr-expiry").textContent = `Code ${qr.attempt} expires in ${left} s.`;
  };
  tick();
  state.qrTimer = setInterval(tick, 1000);
}

async function showQr() {
  try { showQrView(await api("GET", `/v1/instances/${state.selected}/qr`)); } catch (e) { /* no code on show */ }
}

// ---- webhooks ------------------------------------------------------------
async function loadHooks() {
  const list = await api("GET", `/v1/instances/${state.selected}/webhooks`);
  const box = $("hooks");
  box.replaceChildren();
  for (const h of list.items) box.append(await hookCard(h));
  if (!list.items.length) box.append(el("p", { className: "hint", textContent: "No webhooks." }));
}

function health(h) {
  if (!h.enabled) return "disabled" + (h.disabled_reason ? ": " + h.disabled_reason : "");
  if (h.failing_since) return "failing since " + h.failing_since;
  return "healthy";
}

async function hookCard(h) {
  const base = `/v1/instances/${state.selected}/webhooks/${h.id}`;
  const card = el("div", { className: "card" });
  card.dataset.webhook = h.id;
  const test = el("button", { type: "button", textContent: "Send test event" });
  const rotate = el("button", { type: "button", className: "secondary", textContent: "Rotate secret" });
  const refresh = el("button", { type: "button", className: "secondary", textContent: "Refresh deliveries" });
  const deliveries = el("ul", { className: "list" });
  deliveries.setAttribute("aria-label", "Deliveries of " + h.url);
  const load = async () => {
    const page = await api("GET", base + "/deliveries?limit=20");
    deliveries.replaceChildren();
    for (const d of page.items) deliveries.append(deliveryLine(base, d, load));
    if (!page.items.length) deliveries.append(el("li", { textContent: "No deliveries yet." }));
    return page.items;
  };
  test.addEventListener("click", act(async () => {
    await api("POST", base + "/test");
    // Follow the new delivery until it settles.
    for (let n = 0; n < 40; n++) {
      const items = await load();
      if (items.length && !["pending", "delivering"].includes(items[0].status)) break;
      await new Promise((r) => setTimeout(r, 250));
    }
  }));
  rotate.addEventListener("click", act(async () => {
    const s = await api("POST", base + "/rotate-secret");
    $("hook-secret").textContent = "New secret (the old one still signs for a while): " + s.secret;
  }));
  refresh.addEventListener("click", act(load));
  card.append(el("p", { className: "mono", textContent: h.url }), el("p", { textContent: "Health: " + health(h) }),
    el("div", { className: "row" }, test, rotate, refresh), deliveries);
  await load();
  return card;
}

function deliveryLine(base, d, reload) {
  const li = el("li", {});
  li.dataset.status = d.status;
  const summary = el("span", { textContent: `${d.event_type} ${d.status}` + (d.last_status_code ? ` (HTTP ${d.last_status_code})` : "") + ` · ${d.attempts} attempt(s) ` });
  const replay = el("button", { type: "button", className: "secondary", textContent: "Replay" });
  replay.setAttribute("aria-label", "Replay delivery of " + d.event_type);
  const show = el("button", { type: "button", className: "secondary", textContent: "Attempts" });
  const attempts = el("ul", {});
  replay.addEventListener("click", act(async () => {
    await api("POST", `${base}/deliveries/${d.id}/replay`);
    for (let n = 0; n < 40; n++) {
      const items = await api("GET", `${base}/deliveries/${d.id}`);
      if (!["pending", "delivering"].includes(items.status)) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    await reload();
  }));
  show.addEventListener("click", act(async () => {
    const list = await api("GET", `${base}/deliveries/${d.id}/attempts`);
    attempts.replaceChildren(...list.items.map((a) => el("li", { textContent: `#${a.attempt} ${a.started_at} ${a.status_code || a.error_kind || ""} ${a.duration_ms} ms` })));
  }));
  li.append(summary, replay, show, attempts);
  return li;
}

// ---- live stream ---------------------------------------------------------
async function openStream() {
  if (state.stream) state.stream.abort();
  const ctrl = new AbortController();
  state.stream = ctrl;
  while (!ctrl.signal.aborted && state.key) {
    try {
      const headers = { Authorization: "Bearer " + state.key, Accept: "text/event-stream" };
      if (state.lastEventId) headers["Last-Event-ID"] = state.lastEventId;
      const resp = await fetch("/v1/events/stream", { headers, signal: ctrl.signal });
      if (!resp.ok) throw new Error("stream " + resp.status);
      $("live").textContent = "live";
      const reader = resp.body.getReader();
      const decoder = new TextDecoder();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += decoder.decode(value, { stream: true });
        let end;
        while ((end = buf.indexOf("\n\n")) >= 0) {
          const block = buf.slice(0, end);
          buf = buf.slice(end + 2);
          const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trim()).join("\n");
          const id = block.split("\n").find((l) => l.startsWith("id:"));
          if (id) state.lastEventId = id.slice(3).trim();
          if (data) onEvent(JSON.parse(data));
        }
      }
    } catch (e) {
      if (ctrl.signal.aborted) return;
    }
    $("live").textContent = "reconnecting";
    await new Promise((r) => setTimeout(r, 2000));
  }
}

function onEvent(e) {
  const i = state.instances.get(e.instance_id);
  if (e.type.startsWith("instance.") && e.data && e.data.status) {
    if (i) {
      i.status = e.data.status;
      if (e.data.phone_number) i.phone_number = e.data.phone_number;
      if (e.type === "instance.logged_out") i.phone_number = null;
    } else {
      loadInstances().catch(() => {});
    }
    renderInstances();
  }
  if (e.instance_id === state.selected) {
    renderDetail();
    addEventLine(e, true);
    if (e.type === "instance.qr") showQr();
    if (e.type.startsWith("message.")) loadMessages().catch(() => {});
  }
}

// ---- wiring --------------------------------------------------------------
$("key-form").addEventListener("submit", act(async () => {
  state.key = $("key").value.trim();
  $("key").value = "";
  try { await signIn(); } catch (e) { state.key = null; throw e; }
}));
$("signout").addEventListener("click", signOut);
$("create-form").addEventListener("submit", act(async () => {
  const name = $("new-name").value.trim();
  const i = await api("POST", "/v1/instances", name ? { name } : {});
  $("new-name").value = "";
  state.instances.set(i.id, i);
  renderInstances();
  await select(i.id);
}));
$("rename-form").addEventListener("submit", act(async () => {
  const i = await api("PATCH", "/v1/instances/" + state.selected, { name: $("rename").value.trim() || null });
  state.instances.set(i.id, i);
  renderInstances();
  $("detail-title").textContent = "Instance " + (i.name || i.id);
}));
$("delete").addEventListener("click", act(async () => {
  if (!confirm("Delete this instance? It is logged out and its data removed.")) return;
  await api("DELETE", "/v1/instances/" + state.selected);
  state.instances.delete(state.selected);
  state.selected = null;
  $("detail").hidden = true;
  renderInstances();
}));
$("pair").addEventListener("click", act(async () => {
  const r = await api("POST", `/v1/instances/${state.selected}/login`);
  const i = state.instances.get(state.selected);
  i.status = r.status;
  renderDetail();
  renderInstances();
  if (r.qr) showQrView(r.qr);
}));
$("code-form").addEventListener("submit", act(async () => {
  const r = await api("POST", `/v1/instances/${state.selected}/pair-code`, { phone_number: $("phone").value.trim() });
  $("pair-code").textContent = `Pair code for +${r.phone_number}: ${r.code} (WhatsApp › Linked devices › Link with phone number)`;
}));
$("logout").addEventListener("click", act(async () => {
  const i = await api("POST", `/v1/instances/${state.selected}/logout`);
  state.instances.set(i.id, i);
  renderDetail();
  renderInstances();
}));
$("hook-form").addEventListener("submit", act(async () => {
  const h = await api("POST", `/v1/instances/${state.selected}/webhooks`, { url: $("hook-url").value.trim() });
  $("hook-url").value = "";
  $("hook-secret").textContent = "Signing secret (shown once): " + h.secret;
  await loadHooks();
}));

if (state.key) signIn().catch((e) => { notice(e.message); signOut(); });
