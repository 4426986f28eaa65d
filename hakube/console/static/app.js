// hakube console: pages rendered from live stores, each fed by one event stream (a snapshot,
// then every change) from the console server; actions ask for confirmation first.
"use strict";

const stores = {};   // plural -> {items: Map(key -> object)}
let cluster = null;  // the last cluster report
let logSource = null;
let renderQueued = false;

const esc = (s) => String(s ?? "").replace(/[&<>"']/g,
  (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
const keyOf = (o) => `${o.metadata.namespace || ""}/${o.metadata.name}`;
// Sorted keys are kept per store and recomputed only when a key comes or goes (a status
// change does not move a row): re-sorting 10,000 pods on every event would cost more than
// drawing the page.
function items(plural) {
  const store = stores[plural];
  if (!store) return [];
  if (!store.sorted) store.sorted = [...store.items.keys()].sort();
  return store.sorted.map((k) => store.items.get(k));
}
const PAGE_ROWS = 200;  // rows drawn per page of a long table (pods)
let podPage = 0;

let source = null;    // the one event stream, for every kind in `stores`

function watch(plurals) {
  const missing = plurals.filter((p) => !stores[p]);
  if (!missing.length) return;
  missing.forEach((p) => { stores[p] = {items: new Map()}; });
  // one stream for every kind watched so far (a browser allows six connections per host)
  if (source) source.close();
  source = new EventSource(`/console/api/watch?kinds=${Object.keys(stores).join(",")}`);
  source.onmessage = (msg) => {
    const ev = JSON.parse(msg.data);
    const store = stores[ev.kind];
    if (!store) return;
    if (ev.type === "SNAPSHOT") {
      store.items = new Map(ev.items.map((o) => [keyOf(o), o]));
      store.sorted = null;
    } else if (ev.type === "DELETED") {
      store.items.delete(keyOf(ev.object));
      store.sorted = null;
    } else if (ev.type === "ADDED" || ev.type === "MODIFIED") {
      const key = keyOf(ev.object);
      if (!store.items.has(key)) store.sorted = null;
      store.items.set(key, ev.object);
    } else if (ev.type === "ALERTS") {
      store.state = ev;
    } else if (ev.type === "FORBIDDEN") {
      store.forbidden = ev.message;
    } else if (ev.type === "ERROR") {
      notice(`${ev.kind}: ${ev.message}`);
    }
    schedule();
  };
  // EventSource reconnects by itself; the snapshots that follow replace what we had.
}

function schedule() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => { renderQueued = false; render(); });
}

function notice(text) {
  const el = document.getElementById("notice");
  el.textContent = text;
  clearTimeout(notice.timer);
  notice.timer = setTimeout(() => { el.textContent = ""; }, 8000);
}

async function act(action, body, question) {
  if (!window.confirm(question)) return;
  let resp;
  try {
    resp = await fetch(`/console/api/action/${action}`, {
      method: "POST",
      headers: {"Content-Type": "application/json", "X-Hakube-Console": "1"},
      body: JSON.stringify(body),
    });
  } catch (e) {
    notice(`not sent (${e.message}); try again`);
    return;
  }
  const out = await resp.json().catch(() => ({error: `HTTP ${resp.status}`}));
  notice(resp.ok ? out.message : `refused (${resp.status}): ${out.error}`);
}

async function pollCluster() {
  try {
    const resp = await fetch("/console/api/cluster");
    cluster = resp.ok ? await resp.json() : {error: (await resp.json()).error};
  } catch (e) {
    cluster = {error: String(e)};
  }
  const h = document.getElementById("health");
  if (cluster.error) {
    h.innerHTML = `<span class="bad">${esc(cluster.error)}</span>`;
  } else {
    const cls = cluster.healthy ? "ok" : "bad";
    h.innerHTML = `<span class="${cls}">${cluster.healthy ? "healthy" : "unhealthy"}</span>` +
      ` — leader ${esc(cluster.leader || "none")}, term ${cluster.term},` +
      ` ${cluster.ready}/${cluster.total} masters ready`;
  }
  if (page().name === "overview") schedule();
  setTimeout(pollCluster, 2000);
}

function condition(obj, type) {
  return (obj.status?.conditions || []).find((c) => c.type === type);
}

function table(caption, id, headers, rows) {
  const head = headers.map((h) => `<th scope="col">${esc(h)}</th>`).join("");
  return `<table id="${id}"><caption class="visually-hidden">${esc(caption)}</caption>` +
    `<thead><tr>${head}</tr></thead><tbody>${rows.join("") ||
    `<tr><td colspan="${headers.length}">none</td></tr>`}</tbody></table>`;
}

// -- pages ---------------------------------------------------------------------------------

const pages = {
  overview() {
    const m = cluster && !cluster.error ? cluster.masters : [];
    const rows = m.map((x) => `<tr data-name="${esc(x.name)}">` +
      `<td>${esc(x.name)}</td><td>${esc(x.endpoint)}</td>` +
      `<td class="state">${esc(x.reachable === false ? "unreachable" : x.state)}</td>` +
      `<td class="role">${x.name && x.name === cluster.leader ? "leader" : ""}</td>` +
      `<td>${x.term ?? ""}</td><td>${x.commitIndex ?? ""}</td><td>${x.appliedIndex ?? ""}</td>` +
      `<td>${x.lag ?? ""}</td>` +
      `<td class="${x.ready ? "ok" : "bad"}">${x.reachable ? (x.ready ? "ready" : "not ready") : ""}` +
      `</td></tr>`);
    const nodes = items("nodes");
    const ready = nodes.filter((n) => condition(n, "Ready")?.status === "True").length;
    const pods = items("pods");
    const running = pods.filter((p) => p.status?.phase === "Running").length;
    return `<h2>Masters</h2>` +
      table("Masters", "masters",
        ["Name", "Endpoint", "Raft state", "Role", "Term", "Commit", "Applied", "Lag", "Ready"],
        rows) +
      `<h2>At a glance</h2><ul id="glance">` +
      `<li>Nodes: ${ready} of ${nodes.length} ready</li>` +
      `<li>Pods: ${running} of ${pods.length} running</li>` +
      `<li>Deployments: ${items("deployments").length}</li></ul>` + alertsSection();
  },

  nodes() {
    const pods = items("pods");
    const rows = items("nodes").map((n) => {
      const r = condition(n, "Ready");
      const ok = r?.status === "True";
      const count = pods.filter((p) => p.spec?.nodeName === n.metadata.name).length;
      const cap = n.status?.capacity || {}, alloc = n.status?.allocatable || {};
      const cordoned = !!n.spec?.unschedulable;
      return `<tr data-name="${esc(n.metadata.name)}"><td>${esc(n.metadata.name)}</td>` +
        `<td class="${ok ? "ok" : "bad"}">${ok ? "Ready" : "NotReady"}` +
        `${cordoned ? ", SchedulingDisabled" : ""}</td>` +
        `<td>${esc(cap.cpu)} / ${esc(alloc.cpu)}</td><td>${esc(cap.memory)} / ${esc(alloc.memory)}` +
        `</td><td class="pods">${count}</td><td><button data-action="cordon" ` +
        `data-name="${esc(n.metadata.name)}" data-on="${!cordoned}" ` +
        `aria-label="${cordoned ? "Uncordon" : "Cordon"} node ${esc(n.metadata.name)}">` +
        `${cordoned ? "Uncordon" : "Cordon"}</button></td></tr>`;
    });
    return `<h2>Nodes</h2>` + table("Nodes", "nodes",
      ["Name", "Status", "CPU (capacity / allocatable)", "Memory (capacity / allocatable)",
        "Pods", "Actions"], rows);
  },

  workloads() {
    const deploy = items("deployments").map((d) => {
      const want = d.spec?.replicas ?? 1, st = d.status || {};
      const ready = st.readyReplicas || 0, pct = want ? Math.round(100 * ready / want) : 100;
      const key = `${d.metadata.namespace}/${d.metadata.name}`;
      return `<tr data-name="${esc(d.metadata.name)}" data-namespace="${esc(d.metadata.namespace)}">` +
        `<td>${esc(d.metadata.namespace)}</td><td>${esc(d.metadata.name)}</td>` +
        `<td class="replicas">${ready}/${want}</td><td>${st.updatedReplicas || 0}</td>` +
        `<td>${st.availableReplicas || 0}</td>` +
        `<td><progress max="${want || 1}" value="${Math.min(ready, want)}" ` +
        `aria-label="${pct}% ready">${pct}%</progress></td><td>` +
        `<label>Replicas <input type="number" min="0" value="${want}" data-scale="${esc(key)}">` +
        `</label> <button data-action="scale" data-key="${esc(key)}">Scale</button> ` +
        `<button data-action="restart" data-key="${esc(key)}">Restart</button></td></tr>`;
    });
    const simple = (plural, title, fmt) => `<h2>${title}</h2>` + table(title, plural,
      ["Namespace", "Name", "Status"], items(plural).map((o) =>
        `<tr data-name="${esc(o.metadata.name)}"><td>${esc(o.metadata.namespace)}</td>` +
        `<td>${esc(o.metadata.name)}</td><td>${esc(fmt(o))}</td></tr>`));
    return `<h2>Deployments</h2>` + table("Deployments", "deployments",
      ["Namespace", "Name", "Ready", "Up-to-date", "Available", "Progress", "Actions"], deploy) +
      simple("statefulsets", "StatefulSets",
        (o) => `${o.status?.readyReplicas || 0}/${o.spec?.replicas ?? 1} ready`) +
      simple("daemonsets", "DaemonSets",
        (o) => `${o.status?.numberReady || 0}/${o.status?.desiredNumberScheduled || 0} ready`) +
      simple("jobs", "Jobs", (o) => `${o.status?.succeeded || 0} succeeded, ` +
        `${o.status?.failed || 0} failed, ${o.status?.active || 0} active`) +
      simple("cronjobs", "CronJobs", (o) => `${o.spec?.schedule}` +
        `${o.spec?.suspend ? " (suspended)" : ""}, last ${o.status?.lastScheduleTime || "never"}`);
  },

  pods() {
    const all = items("pods");
    const pages = Math.max(1, Math.ceil(all.length / PAGE_ROWS));
    podPage = Math.min(podPage, pages - 1);
    const first = podPage * PAGE_ROWS;
    const rows = all.slice(first, first + PAGE_ROWS).map((p) => {
      const cs = p.status?.containerStatuses || [];
      const ready = cs.filter((c) => c.ready).length;
      const restarts = cs.reduce((n, c) => n + (c.restartCount || 0), 0);
      const waiting = cs.map((c) => c.state?.waiting?.reason).find(Boolean);
      const status = p.metadata.deletionTimestamp ? "Terminating" : waiting || p.status?.phase;
      const ns = p.metadata.namespace, name = p.metadata.name;
      return `<tr data-name="${esc(name)}" data-namespace="${esc(ns)}"><td>${esc(ns)}</td>` +
        `<td><a href="#/pod/${encodeURIComponent(ns)}/${encodeURIComponent(name)}">${esc(name)}` +
        `</a></td><td>${ready}/${(p.spec?.containers || []).length}</td>` +
        `<td class="status">${esc(status)}</td><td>${restarts}</td>` +
        `<td>${esc(p.spec?.nodeName)}</td><td>${esc(p.status?.podIP)}</td>` +
        `<td><button data-action="delete-pod" data-key="${esc(ns)}/${esc(name)}" ` +
        `aria-label="Delete pod ${esc(name)}">Delete</button></td></tr>`;
    });
    const pager = pages < 2 ? "" : `<nav class="pager" aria-label="Pod pages">` +
      `<button data-action="page" data-to="${podPage - 1}" ${podPage ? "" : "disabled"}>` +
      `Previous</button> <span id="pods-range">${first + 1}–` +
      `${Math.min(first + PAGE_ROWS, all.length)} of ${all.length}</span> ` +
      `<button data-action="page" data-to="${podPage + 1}" ` +
      `${podPage + 1 < pages ? "" : "disabled"}>Next</button></nav>`;
    return `<h2>Pods <span class="count" id="pods-count">${all.length}</span></h2>` + pager +
      table("Pods", "pods",
        ["Namespace", "Name", "Ready", "Status", "Restarts", "Node", "IP", "Actions"], rows) +
      pager;
  },

  pod(ns, name) {
    const p = stores.pods?.items.get(`${ns}/${name}`);
    const containers = (p?.spec?.containers || []).map((c) => c.name);
    const events = items("events").filter((e) => e.involvedObject?.name === name &&
      e.involvedObject?.namespace === ns).map((e) => `<tr><td>${esc(e.type)}</td>` +
      `<td>${esc(e.reason)}</td><td>${esc(e.message)}</td></tr>`);
    return `<h2>Pod ${esc(ns)}/${esc(name)}</h2>` +
      `<p>Phase <strong id="phase">${esc(p?.status?.phase || "unknown")}</strong> on node ` +
      `${esc(p?.spec?.nodeName || "-")}, IP ${esc(p?.status?.podIP || "-")}</p>` +
      `<h2>Log${containers.length > 1 ? ` of ${esc(containers[0])}` : ""}</h2>` +
      `<pre class="log" id="log" aria-live="off" tabindex="0"></pre>` +
      `<h2>Events</h2>` + table("Events", "pod-events", ["Type", "Reason", "Message"], events);
  },

  services() {
    const eps = stores.endpoints?.items || new Map();
    const rows = items("services").map((s) => {
      const ep = eps.get(keyOf(s));
      const addrs = (ep?.subsets || []).flatMap((sub) => (sub.addresses || []).map((a) => a.ip));
      const ports = (s.spec?.ports || []).map((p) =>
        `${p.port}${p.nodePort ? ":" + p.nodePort : ""}/${p.protocol || "TCP"}`).join(", ");
      return `<tr data-name="${esc(s.metadata.name)}"><td>${esc(s.metadata.namespace)}</td>` +
        `<td>${esc(s.metadata.name)}</td><td>${esc(s.spec?.type || "ClusterIP")}</td>` +
        `<td>${esc(s.spec?.clusterIP)}</td><td>${esc(ports)}</td>` +
        `<td class="endpoints">${esc(addrs.join(", ") || "none ready")}</td></tr>`;
    });
    return `<h2>Services</h2>` + table("Services", "services",
      ["Namespace", "Name", "Type", "Cluster IP", "Ports", "Endpoints"], rows);
  },

  events() {
    const rows = items("events").slice(-200).reverse().map((e) =>
      `<tr><td>${esc(e.metadata.namespace)}</td><td>${esc(e.type)}</td><td>${esc(e.reason)}</td>` +
      `<td>${esc(e.involvedObject?.kind)}/${esc(e.involvedObject?.name)}</td>` +
      `<td>${esc(e.message)}</td></tr>`);
    return `<h2>Events</h2>` + table("Events", "events",
      ["Namespace", "Type", "Reason", "Object", "Message"], rows);
  },
};

// Prometheus' alerts, asked for by the console server and pushed on the page's stream.
function alertsSection() {
  const st = stores.alerts?.state;
  let body;
  if (!st) {
    body = `<p id="alerts-status">Asking Prometheus…</p>`;
  } else if (!st.configured) {
    body = `<p id="alerts-status">No Prometheus configured: start the console with ` +
      `<code>--prometheus-url http://HOST:9090</code> to see alerts here.</p>`;
  } else if (!st.reachable) {
    body = `<p id="alerts-status" class="bad">${esc(st.error)}</p>`;
  } else if (!st.alerts.length) {
    body = `<p id="alerts-status" class="ok">No alerts firing or pending.</p>`;
  } else {
    const firing = st.alerts.filter((a) => a.state === "firing").length;
    const rows = st.alerts.map((a) => {
      const where = Object.entries(a.labels).filter(([k]) => k !== "job" && k !== "instance")
        .map(([k, v]) => `${k}=${v}`).join(", ");
      const runbook = /^https?:\/\//.test(a.runbook)
        ? `<a href="${esc(a.runbook)}" rel="noopener noreferrer">runbook</a>` : esc(a.runbook);
      return `<tr data-alert="${esc(a.name)}" data-state="${esc(a.state)}">` +
        `<td>${esc(a.name)}</td><td class="${a.state === "firing" ? "bad" : "warn"}">` +
        `${esc(a.state)}</td><td>${esc(a.severity)}</td><td>${esc(a.summary)}` +
        `${where ? ` <small>(${esc(where)})</small>` : ""}</td>` +
        `<td>${esc(String(a.since).replace(/\.\d+Z$/, "Z"))}</td><td>${runbook}</td></tr>`;
    });
    body = `<p id="alerts-status" class="bad">${firing} firing, ` +
      `${st.alerts.length - firing} pending</p>` + table("Alerts", "alerts",
      ["Alert", "State", "Severity", "Summary", "Since", "Runbook"], rows);
  }
  return `<h2>Alerts</h2>` + body;
}

const needs = {
  overview: ["nodes", "pods", "deployments", "alerts"], nodes: ["nodes", "pods"],
  workloads: ["deployments", "statefulsets", "daemonsets", "jobs", "cronjobs"],
  pods: ["pods"], pod: ["pods", "events"], services: ["services", "endpoints"],
  events: ["events"],
};

function page() {
  const parts = (location.hash.replace(/^#\//, "") || "overview").split("/")
    .map(decodeURIComponent);
  return {name: pages[parts[0]] ? parts[0] : "overview", args: parts.slice(1)};
}

function render() {
  const {name, args} = page();
  const main = document.getElementById("main");
  // keep what the user is typing (a replica count) across a live re-render
  const focused = document.activeElement?.dataset?.scale;
  const typed = focused ? document.activeElement.value : null;
  const log = document.getElementById("log");
  const logText = log ? log.textContent : null;
  const hidden = (needs[name] || []).filter((p) => stores[p]?.forbidden);
  main.innerHTML = pages[name](...args) + (hidden.length ? `<p class="warn" id="hidden">` +
    `Not shown, your user may not list: ${hidden.map(esc).join(", ")}</p>` : "");
  if (focused) {
    const input = main.querySelector(`input[data-scale="${CSS.escape(focused)}"]`);
    if (input) { input.value = typed; input.focus(); }
  }
  const newLog = document.getElementById("log");
  if (newLog && logText !== null) newLog.textContent = logText;
  document.querySelectorAll("nav a").forEach((a) => {
    if (a.dataset.page === name || (name === "pod" && a.dataset.page === "pods")) {
      a.setAttribute("aria-current", "page");
    } else {
      a.removeAttribute("aria-current");
    }
  });
}

function followLog(ns, name) {
  if (logSource) logSource.close();
  logSource = new EventSource(`/console/api/logs/${encodeURIComponent(ns)}/` +
    `${encodeURIComponent(name)}`);
  logSource.onmessage = (msg) => {
    const ev = JSON.parse(msg.data);
    const log = document.getElementById("log");
    if (!log) return;
    if (ev.type === "ERROR") { notice(`logs: ${ev.message}`); logSource.close(); return; }
    const atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    log.textContent += ev.line;
    if (atEnd) log.scrollTop = log.scrollHeight;
  };
}

function route() {
  const {name, args} = page();
  watch(needs[name] || []);
  if (logSource) { logSource.close(); logSource = null; }
  render();
  if (name === "pod") followLog(args[0], args[1]);
  document.getElementById("main").focus({preventScroll: true});
}

document.addEventListener("click", (ev) => {
  const b = ev.target.closest("button[data-action]");
  if (!b) return;
  if (b.dataset.action === "page") {
    podPage = Math.max(0, Number(b.dataset.to));
    render();
    return;
  }
  const [ns, name] = (b.dataset.key || "/").split("/");
  if (b.dataset.action === "scale") {
    const input = document.querySelector(`input[data-scale="${CSS.escape(b.dataset.key)}"]`);
    const replicas = Number(input.value);
    act("scale", {namespace: ns, name, replicas},
      `Scale deployment ${ns}/${name} to ${replicas} replicas?`);
  } else if (b.dataset.action === "restart") {
    act("restart", {namespace: ns, name}, `Restart every pod of deployment ${ns}/${name}?`);
  } else if (b.dataset.action === "delete-pod") {
    act("delete-pod", {namespace: ns, name}, `Delete pod ${ns}/${name}?`);
  } else if (b.dataset.action === "cordon") {
    const on = b.dataset.on === "true";
    act("cordon", {name: b.dataset.name, unschedulable: on},
      `${on ? "Cordon" : "Uncordon"} node ${b.dataset.name}?`);
  }
});

window.addEventListener("hashchange", route);
pollCluster();
route();
