// scimgate's admin page. No framework and nothing from elsewhere: the page builds its DOM
// with textContent only (no HTML from data), talks to /admin/api with the session cookie,
// and sends the session's CSRF token with every change.
"use strict";

const state = { me: null, tenant: null };
const main = () => document.getElementById("main");

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

class HttpError extends Error {
  constructor(status, detail) { super(detail); this.status = status; }
}

async function call(method, path, body) {
  const headers = { "Accept": "application/json" };
  if (method !== "GET") {
    headers["Content-Type"] = "application/json";
    if (state.me) headers["X-CSRF-Token"] = state.me.csrf;
  }
  const resp = await fetch(path, {
    method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await resp.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = null; }
  if (!resp.ok) {
    if (resp.status === 401 && path !== "/admin/session") { state.me = null; showSignIn(); }
    throw new HttpError(resp.status, (data && (data.detail || data.error_description)) || resp.statusText);
  }
  return data;
}

const get = (path, params) => {
  const q = new URLSearchParams({ tenant: state.tenant || "" });
  for (const [k, v] of Object.entries(params || {})) if (v) q.set(k, v);
  return call("GET", `${path}?${q}`);
};
const post = (path, body) => call("POST", path, body === undefined ? {} : body);

// Sets a node's children, leaving out the absent ones (`cond ? node : null`).
function fill(node, ...kids) {
  node.replaceChildren(...kids.flat().filter(k => k !== null && k !== undefined && k !== false));
}

function show(...nodes) {
  const m = main();
  fill(m, ...nodes);
}

function failure(e) {
  return el("p", { class: "error", id: "error", text: `${e.status || ""} ${e.message}`.trim() });
}

function statusClass(s) {
  return s >= 500 ? "status-failed" : s >= 400 ? "status-refused" : "status-ok";
}

function table(columns, rows, onClick) {
  return el("table", {},
    el("thead", {}, el("tr", {}, columns.map(c => el("th", { text: c.title })))),
    el("tbody", {}, rows.map(r => el("tr", {
      class: onClick ? "clickable" : null,
      onclick: onClick ? () => onClick(r) : null,
    }, columns.map(c => el("td", {}, c.cell(r)))))));
}

const when = t => t ? String(t).replace("T", " ").replace(/\.\d+Z$|Z$/, "") : "";
const unix = t => t ? new Date(t * 1000).toISOString().replace("T", " ").slice(0, 19) : "";

// ---- sign-in --------------------------------------------------------------------------

function showSignIn(message) {
  document.getElementById("nav").hidden = true;
  document.getElementById("who").hidden = true;
  const token = el("textarea", { id: "token", placeholder: "a token with the scim:admin scope" });
  show(el("div", { class: "signin" },
    el("h1", { text: "Sign in" }),
    message ? el("p", { class: "error", id: "error", text: message }) : null,
    el("p", { text: "Open the link `scimgate admin login-url` prints, or paste a token with the scim:admin scope." }),
    el("form", { id: "signin", onsubmit: ev => { ev.preventDefault(); signIn(token.value); } },
      token, el("p", {}, el("button", { type: "submit", id: "signin-button", text: "Sign in" })))));
}

async function signIn(token) {
  try {
    state.me = await call("POST", "/admin/session", { token });
    start();
  } catch (e) {
    showSignIn(e.message);
  }
}

async function signOut() {
  try { await post("/admin/logout"); } catch (_) { /* signed out either way */ }
  state.me = null;
  showSignIn("Signed out.");
}

function start() {
  document.getElementById("nav").hidden = false;
  document.getElementById("who").hidden = false;
  document.getElementById("subject").textContent = state.me.subject;
  const select = document.getElementById("tenant");
  fill(select, ...state.me.tenants.map(t => el("option", { value: t, text: t })));
  state.tenant = state.tenant && state.me.tenants.includes(state.tenant) ? state.tenant : state.me.tenants[0];
  select.value = state.tenant;
  if (!location.hash || location.hash === "#") location.hash = "#/activity";
  else route();
}

// ---- views ----------------------------------------------------------------------------

async function activityView(params) {
  const f = Object.assign({ status: "", subject: "", resource: "", since: "", until: "" }, params);
  const input = (name, type, label) => el("label", {}, label,
    el("input", { name, type: type || "text", value: f[name], id: `filter-${name}` }));
  const status = el("select", { name: "status", id: "filter-status" },
    [["", "all"], ["ok", "2xx accepted"], ["refused", "4xx refused"], ["failed", "5xx failed"]]
      .map(([v, t]) => el("option", { value: v, text: t, selected: f.status === v })));
  const form = el("form", { class: "filters", id: "activity-filters", onsubmit: ev => {
    ev.preventDefault();
    const data = Object.fromEntries(new FormData(form).entries());
    activityView(data);
  } }, el("label", {}, "status", status), input("subject", "text", "IdP subject"),
  input("resource", "text", "resource id"), input("since", "datetime-local", "from"),
  input("until", "datetime-local", "until"), el("button", { type: "submit", id: "filter-apply", text: "Filter" }));
  const body = el("div", { id: "activity" });
  const detail = el("div", { id: "activity-detail" });
  show(el("h1", { text: `Provisioning activity · ${state.tenant}` }), form, body, detail);
  let rows = [];
  const load = async cursor => {
    try {
      const page = await get("/admin/api/activity", Object.assign({}, f, { cursor }));
      rows = rows.concat(page.entries);
      fill(body, table([
        { title: "time (UTC)", cell: r => when(r.at) },
        { title: "subject", cell: r => r.subject || "" },
        { title: "method", cell: r => r.method },
        { title: "resource", cell: r => `${r.resourceType || ""} ${r.resourceId || ""}` },
        { title: "status", cell: r => el("span", { class: statusClass(r.status), text: r.status }) },
        { title: "plugins", cell: r => (r.plugins || []).map(p => `${p.plugin}: ${p.decision}`).join(", ") },
        { title: "detail", cell: r => r.detail || "" },
      ], rows, r => activityRow(r, detail)),
      page.next ? el("p", {}, el("button", { class: "quiet", id: "more", text: "Older", onclick: () => load(page.next) })) : null,
      rows.length === 0 ? el("p", { class: "muted", text: "No rows." }) : null);
    } catch (e) { fill(body, failure(e)); }
  };
  load();
}

async function activityRow(row, into) {
  try {
    const d = await get(`/admin/api/activity/${encodeURIComponent(row.ref)}`);
    fill(into, el("div", { class: "panel", id: "row-detail" },
      el("h2", { text: `${d.row.method} ${d.row.resourceType || ""} ${d.row.resourceId || ""} → ${d.row.status}` }),
      el("p", { class: "muted", text: `versions ${d.row.versionBefore ?? "–"} → ${d.row.versionAfter ?? "–"} · ${when(d.row.at)}` }),
      d.row.detail ? el("p", { class: "error", text: d.row.detail }) : null,
      el("h2", { text: "What the write changed" }),
      d.change ? el("pre", { id: "row-change", text: JSON.stringify(d.change, null, 2) })
        : el("p", { class: "muted", text: "No change stored (a refused request, or past the feed's retention)." }),
      d.before ? el("h2", { text: "The version before" }) : null,
      d.before ? el("pre", { text: JSON.stringify(d.before, null, 2) }) : null));
  } catch (e) { fill(into, failure(e)); }
}

async function resourcesView(kind, params) {
  const filter = (params && params.filter) || "";
  const input = el("input", { name: "filter", id: "resource-filter", size: 50, value: filter,
    placeholder: kind === "Users" ? 'userName sw "a"' : 'displayName eq "Sales"' });
  const form = el("form", { class: "filters", onsubmit: ev => { ev.preventDefault(); resourcesView(kind, { filter: input.value }); } },
    el("label", {}, "SCIM filter", input), el("button", { type: "submit", id: "resource-search", text: "Search" }));
  const body = el("div", { id: "resources" });
  const detail = el("div", { id: "resource-detail" });
  show(el("h1", { text: `${kind} · ${state.tenant}` }), form, body, detail);
  let rows = [];
  let total = null;
  const load = async cursor => {
    try {
      const page = await get(`/admin/api/resources/${kind}`, { filter, cursor });
      if (page.total !== null && page.total !== undefined) total = page.total;
      rows = rows.concat(page.rows);
      fill(body, 
        total !== null ? el("p", { class: "muted", id: "resource-total", text: `${total} matching` }) : null,
        table([
          { title: kind === "Users" ? "userName" : "displayName", cell: r => r.name || "" },
          { title: "id", cell: r => r.id },
          { title: "externalId", cell: r => r.externalId || "" },
          { title: "active", cell: r => r.active === undefined || r.active === null ? "" : String(r.active) },
          { title: "last modified", cell: r => when(r.lastModified) },
        ], rows, r => resourceDetail(kind, r.id, detail)),
        page.next ? el("p", {}, el("button", { class: "quiet", id: "more", text: "More", onclick: () => load(page.next) })) : null);
    } catch (e) { fill(body, failure(e)); }
  };
  load();
}

async function resourceDetail(kind, id, into) {
  try {
    const d = await get(`/admin/api/resources/${kind}/${encodeURIComponent(id)}`);
    const r = d.resource;
    const related = kind === "Users" ? (r.groups || []) : (r.members || []);
    fill(into, el("div", { class: "panel", id: "resource-panel" },
      el("h2", { text: r.userName || r.displayName || r.id }),
      el("h2", { text: kind === "Users" ? "Groups" : "Members" }),
      related.length ? el("ul", { id: "related" }, related.map(m => el("li", { text: `${m.display || ""} (${m.value})` })))
        : el("p", { class: "muted", text: "None." }),
      el("h2", { text: "History" }),
      table([
        { title: "time (UTC)", cell: h => when(h.at) },
        { title: "subject", cell: h => h.subject || "" },
        { title: "method", cell: h => h.method },
        { title: "status", cell: h => el("span", { class: statusClass(h.status), text: h.status }) },
        { title: "versions", cell: h => `${h.versionBefore ?? "–"} → ${h.versionAfter ?? "–"}` },
        { title: "detail", cell: h => h.detail || "" },
      ], d.history),
      el("h2", { text: "As a SCIM client reads it" }),
      el("pre", { id: "resource-json", text: JSON.stringify(r, null, 2) })));
  } catch (e) { fill(into, failure(e)); }
}

async function receiversView() {
  const body = el("div", { id: "receivers" });
  const note = el("div", { id: "receiver-note" });
  show(el("h1", { text: "Event receivers" }), note, body);
  const load = async () => {
    try {
      const d = await get("/admin/api/receivers");
      fill(body, d.receivers.length === 0 ? el("p", { class: "muted", text: "No receiver or cursor has a position yet." }) :
        table([
          { title: "consumer", cell: r => r.consumer },
          { title: "tenant", cell: r => r.tenant },
          { title: "state", cell: r => el("span", { class: r.state === "dead" ? "status-failed" : "status-ok", text: r.state }) },
          { title: "delivered", cell: r => r.delivered },
          { title: "lag (events)", cell: r => r.lag },
          { title: "last error", cell: r => r.lastError || "" },
          { title: "", cell: r => el("span", {},
              r.state === "dead" ? el("button", { class: "danger", text: "Re-enable", onclick: async () => {
                try { const done = await post(`/admin/api/receivers/${encodeURIComponent(r.consumer)}/enable`);
                  fill(note, el("p", { class: "notice", text: `${r.consumer} re-enabled in ${done.enabledInTenants} tenant(s).` })); load();
                } catch (e) { fill(note, failure(e)); } } }) : null,
              " ",
              el("button", { class: "quiet", text: "Retry from last delivered", onclick: async () => {
                try { await post(`/admin/api/receivers/${encodeURIComponent(r.consumer)}/replay`, { tenant: r.tenant, from: r.delivered + 1 });
                  fill(note, el("p", { class: "notice", text: `${r.consumer} will deliver again from event ${r.delivered + 1}.` }));
                } catch (e) { fill(note, failure(e)); } } })) },
        ], d.receivers));
    } catch (e) { fill(body, failure(e)); }
  };
  load();
}

async function pluginsView() {
  const body = el("div", { id: "plugins" });
  const note = el("div", { id: "plugin-note" });
  show(el("h1", { text: "Plugins and schemas" }), note, body);
  try {
    const d = await get("/admin/api/plugins");
    const mean = f => f ? ((f.accepted + f.modified + f.rejected + f.failed) ? (f.totalMicros / (f.accepted + f.modified + f.rejected + f.failed)).toFixed(0) : "0") : "";
    fill(body, 
      d.reloadable ? el("p", {}, el("button", { id: "reload", text: "Reload plugins and schemas", onclick: async () => {
        try { await post("/admin/api/plugins/reload"); fill(note, el("p", { class: "notice", text: "Reload asked; the log says how it went." })); }
        catch (e) { fill(note, failure(e)); } } })) : null,
      el("h2", { text: "Plugins" }),
      d.plugins.length === 0 ? el("p", { class: "muted", text: "No plugin configured." }) : table([
        { title: "name", cell: p => p.name },
        { title: "file", cell: p => p.file },
        { title: "hooks", cell: p => (p.hooks.length ? p.hooks : ["create", "replace", "patch"]).join(", ") },
        { title: "tenants", cell: p => p.tenants ? p.tenants.join(", ") : "all" },
        { title: "calls", cell: p => p.figures ? p.figures.accepted + p.figures.modified + p.figures.rejected + p.figures.failed : 0 },
        { title: "rejected", cell: p => p.figures ? p.figures.rejected : 0 },
        { title: "failed", cell: p => p.figures ? p.figures.failed : 0 },
        { title: "mean µs", cell: p => mean(p.figures) },
        { title: "max µs", cell: p => p.figures ? p.figures.maxMicros : "" },
      ], d.plugins),
      el("h2", { text: "Schemas" }),
      table([
        { title: "id", cell: s => s.id },
        { title: "name", cell: s => s.name },
        { title: "resource type", cell: s => s.resourceType },
        { title: "attributes", cell: s => s.attributes },
        { title: "tenants", cell: s => s.tenants ? s.tenants.join(", ") : "all" },
      ], d.schemas));
  } catch (e) { fill(body, failure(e)); }
}

async function accessView() {
  const body = el("div", { id: "access" });
  const note = el("div", { id: "access-note" });
  show(el("h1", { text: "Tokens and OAuth clients" }), note, body);
  const once = (what, value) => fill(note, el("div", { class: "notice", id: "shown-once" },
    el("strong", { text: `${what} (shown once): ` }), el("code", { id: "secret", text: value })));
  const act = (label, cls, id, fn) => el("button", { class: cls, id, text: label, onclick: async () => {
    try { await fn(); } catch (e) { fill(note, failure(e)); } } });
  const load = async () => {
    try {
      const d = await get("/admin/api/access");
      fill(body, 
        el("h2", { text: "Tokens minted here" }),
        table([
          { title: "jti", cell: t => t.jti },
          { title: "subject", cell: t => t.subject || "" },
          { title: "tenants", cell: t => t.tenants.join(", ") },
          { title: "scope", cell: t => t.scope || "" },
          { title: "expires", cell: t => unix(t.expiresAt) },
          { title: "state", cell: t => t.revokedAt ? el("span", { class: "status-failed", text: `revoked ${unix(t.revokedAt)}` }) : "valid" },
          { title: "", cell: t => t.actionable && !t.revokedAt ? el("span", {},
              act("Revoke", "danger", `revoke-${t.jti}`, async () => {
                await post(`/admin/api/tokens/${encodeURIComponent(t.jti)}/revoke`);
                fill(note, el("p", { class: "notice", text: `Token ${t.jti} revoked.` })); load(); }),
              " ",
              act("Rotate", "quiet", `rotate-${t.jti}`, async () => {
                const r = await post(`/admin/api/tokens/${encodeURIComponent(t.jti)}/rotate`);
                once(`New token ${r.jti}; revoke the old one once the IdP has it`, r.token); load(); })) : "" },
        ], d.tokens),
        el("h2", { text: "OAuth clients" }),
        d.clients.length === 0 ? el("p", { class: "muted", text: "No client." }) : table([
          { title: "name", cell: c => c.name },
          { title: "client id", cell: c => c.clientId },
          { title: "tenants", cell: c => c.tenants.join(", ") },
          { title: "scope", cell: c => c.scope },
          { title: "secrets", cell: c => c.assertion ? "assertion (no secret)" : c.secrets.map(s => s.expires ? `ends ${unix(s.expires)}` : "current").join(", ") },
          { title: "", cell: c => c.actionable ? el("span", {},
              c.assertion ? null : act("Rotate secret", "quiet", `rotate-client-${c.name}`, async () => {
                const r = await post(`/admin/api/clients/${encodeURIComponent(c.name)}/rotate`);
                once(`New secret of ${r.clientId}; the old one works one more day`, r.clientSecret); load(); }),
              " ",
              act("Remove", "danger", `remove-client-${c.name}`, async () => {
                await post(`/admin/api/clients/${encodeURIComponent(c.name)}/remove`);
                fill(note, el("p", { class: "notice", text: `Client ${c.name} removed.` })); load(); })) : "" },
        ], d.clients));
    } catch (e) { fill(body, failure(e)); }
  };
  load();
}

async function healthView() {
  const body = el("div", { id: "health", class: "cards" });
  show(el("h1", { text: "Health" }), body);
  const card = (label, value, id) => el("div", { class: "card" }, el("div", { class: "muted", text: label }),
    el("div", { class: "value", id, text: value }));
  const load = async () => {
    if (!document.body.contains(body)) return;
    try {
      const h = await get("/admin/api/health");
      fill(body, 
        card("database size", `${(h.databaseBytes / 1048576).toFixed(1)} MiB`, "health-size"),
        card("writes / s", h.writesPerSecond.toFixed(1), "health-writes"),
        card("commits / s", h.commitsPerSecond.toFixed(1), "health-commits"),
        card("mean commit", `${h.meanCommitMillis.toFixed(2)} ms`, "health-commit-ms"),
        card("writes since start", h.writes, "health-total-writes"),
        card("events written", h.eventsWritten, "health-events"),
        card("read pool (idle / all)", `${h.idleReadConnections} / ${h.readConnections}`, "health-pool"),
        card("mean read-pool wait", `${h.meanReadWaitMillis.toFixed(3)} ms`, "health-wait"),
        card("open connections", h.openConnections, "health-connections"));
      setTimeout(load, 2000);
    } catch (e) { fill(body, failure(e)); }
  };
  load();
}

// ---- routing --------------------------------------------------------------------------

function route() {
  if (!state.me) return;
  const view = (location.hash.replace(/^#\//, "") || "activity").split("?")[0];
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("current", a.id === `nav-${view}`);
  ({
    activity: () => activityView(),
    users: () => resourcesView("Users"),
    groups: () => resourcesView("Groups"),
    receivers: receiversView,
    plugins: pluginsView,
    access: accessView,
    health: healthView,
  }[view] || (() => activityView()))();
}

// A sign-in link carries its token after '#t=': never sent to the server in the URL, so
// it stays out of logs and Referer headers; removed from the address bar at once.
function signInLink() {
  const link = location.hash.match(/^#t=([A-Za-z0-9._-]+)$/);
  if (!link) return false;
  history.replaceState(null, "", "/admin/#/activity");
  signIn(link[1]);
  return true;
}

async function boot() {
  document.getElementById("sign-out").addEventListener("click", signOut);
  document.getElementById("tenant").addEventListener("change", ev => { state.tenant = ev.target.value; route(); });
  window.addEventListener("hashchange", () => { if (!signInLink()) route(); });
  if (signInLink()) return;
  try {
    state.me = await call("GET", "/admin/api/me");
    start();
  } catch (_) {
    showSignIn();
  }
}

document.addEventListener("DOMContentLoaded", boot);
