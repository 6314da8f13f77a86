// photodedup review: plain JavaScript, no build step. Every text from the catalog goes in through
// textContent (never innerHTML), and every state-changing request carries the session token.
"use strict";

const TOKEN = document.querySelector('meta[name="photodedup-token"]').content;
const $ = (id) => document.getElementById(id);
const state = { order: [], totals: null, group: null, selected: 0, kind: "", sort: "size" };

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value !== null && value !== undefined && value !== false) node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

async function api(method, url, body) {
  const options = { method, headers: { "X-Photodedup-Token": TOKEN } };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(url, options);
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.error || data.detail || `${response.status} ${response.statusText}`);
  return data;
}

function human(bytes) {
  if (bytes === null || bytes === undefined) return "?";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = bytes, unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit++; }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}

function toast(message, isError = false) {
  const box = $("toast");
  box.textContent = message;
  box.className = isError ? "toast error" : "toast";
  box.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { box.hidden = true; }, isError ? 6000 : 3000);
}

async function guarded(action) {
  try { return await action(); } catch (error) { toast(error.message, true); return null; }
}

// -- overview -----------------------------------------------------------------------------------
async function loadOverview() {
  const query = new URLSearchParams({ sort: state.sort });
  if (state.kind) query.set("kind", state.kind);
  const data = await api("GET", `/api/overview?${query}`);
  state.order = data.groups.map((g) => g.id);
  state.totals = data.totals;
  renderTotals();
  return data;
}

function renderTotals() {
  const t = state.totals;
  $("progress-text").textContent = `${t.reviewed} / ${t.groups} groups reviewed`;
  $("progress-fill").style.width = t.groups ? `${(100 * t.reviewed) / t.groups}%` : "0";
  $("marked").textContent = human(t.marked_trash);
  $("reclaimable").textContent = human(t.reclaimable);
}

async function showOverview() {
  $("group-view").hidden = true;
  $("overview-view").hidden = false;
  const data = await loadOverview();
  const list = $("group-list");
  list.replaceChildren(...data.groups.map(groupCard));
  $("empty").hidden = data.groups.length > 0;
  $("shown-count").textContent = `${data.totals.shown} of ${data.totals.groups} groups`;
  document.title = "photodedup review";
}

function groupCard(g) {
  const thumbs = g.files.slice(0, 4).map((id) => el("img", { src: `/files/${id}/thumb`, alt: "", loading: "lazy" }));
  const open = () => { location.hash = `#/group/${g.id}`; };
  return el("li", { class: "group-card", tabindex: "0", dataset: { group: g.id }, onclick: open,
                    onkeydown: (e) => { if (e.key === "Enter") open(); } },
    el("div", { class: "strip" }, thumbs),
    el("div", { class: "line" },
      el("strong", {}, `Group ${g.id}`), el("span", { class: `badge ${g.kind}` }, g.kind),
      el("span", {}, `${g.count} files`), el("span", { class: `state ${g.state}` }, g.state)),
    el("div", { class: "line muted" },
      el("span", {}, `${human(g.reclaimable)} to free`), el("span", {}, `score ${g.score.toFixed(3)}`),
      el("span", {}, `keeper: ${g.keeper_reason}`)));
}

// -- one group ----------------------------------------------------------------------------------
async function showGroup(id) {
  if (!state.totals) await loadOverview();
  const group = await api("GET", `/api/groups/${id}`);
  if (!state.group || state.group.id !== group.id) {
    const keeper = group.members.findIndex((m) => m.keeper);
    state.selected = Math.max(0, keeper);
  }
  state.group = group;
  $("overview-view").hidden = true;
  $("group-view").hidden = false;
  renderGroup();
}

function renderGroup() {
  const g = state.group;
  const position = state.order.indexOf(g.id);
  $("group-title").textContent = position >= 0
    ? `Group ${g.id} · ${position + 1} of ${state.order.length}` : `Group ${g.id}`;
  $("group-state").textContent = g.state;
  $("group-state").className = `state ${g.state}`;
  $("group-note").hidden = g.state !== "dismissed";
  $("prev-group").disabled = position <= 0;
  $("next-group").disabled = position < 0 || position >= state.order.length - 1;
  const best = bestValues(g.members);
  $("members").replaceChildren(...g.members.map((m, i) => memberCard(m, i, best)));
  document.title = `Group ${g.id} · photodedup review`;
}

function bestValues(members) {
  const max = (f) => Math.max(...members.map(f));
  return { pixels: max((m) => (m.width || 0) * (m.height || 0)), size: max((m) => m.size || 0) };
}

function memberCard(m, index, best) {
  const tags = [];
  if (m.keeper) tags.push(el("span", { class: "tag keeper", title: "suggested keeper" }, `★ suggested keeper`));
  if (m.in_trash) tags.push(el("span", { class: "tag in-trash" }, "IN TRASH"));
  else if (m.decision) tags.push(el("span", { class: `tag ${m.decision}` }, m.decision.toUpperCase()));
  const pixels = (m.width || 0) * (m.height || 0);
  const classes = ["member", m.decision || "", index === state.selected ? "selected" : ""].join(" ");
  const row = (label, value, isBest = false) => [el("dt", {}, label), el("dd", { class: isBest ? "best" : null }, value)];
  return el("article", { class: classes, dataset: { file: m.file_id }, onclick: () => select(index) },
    el("span", { class: "number" }, index + 1),
    el("div", { class: "photo", title: "full size (f)", onclick: () => openViewer(index) },
      el("img", { src: `/files/${m.file_id}/thumb`, alt: m.path })),
    el("h3", { class: "name", title: m.path }, m.path.split("/").pop()),
    el("div", { class: "tags" }, tags),
    m.companions.length ? el("p", { class: "pair" }, "RAW+JPEG pair, kept or trashed together: ",
      ...m.companions.map((c) => el("span", { class: "path", title: c.path }, `+ ${c.path.split("/").pop()} (${c.format}, ${human(c.size)})`))) : [],
    el("dl", {},
      row("dimensions", m.width ? `${m.width} × ${m.height}` : "?", pixels === best.pixels && pixels > 0),
      row("file size", human(m.size), m.size === best.size),
      row("taken", m.taken_at ? m.taken_at.replace("T", " ") : "—"),
      row("camera", m.camera || "—"),
      row("format", m.format || "?"),
      row("evidence", m.keeper ? "keeper" : `${m.evidence} · ${m.score.toFixed(3)}`),
      m.keeper ? row("why keep", state.group.keeper_reason) : [],
      row("path", el("span", { class: "path" }, m.path)),
      ...m.companions.map((c) => row("pair", el("span", { class: "path" }, c.path)))),
    el("div", { class: "buttons" },
      el("button", { type: "button", class: `keep-btn ${m.decision === "keep" ? "on" : ""}`, disabled: m.in_trash,
                     onclick: (e) => { e.stopPropagation(); decide(m, m.decision === "keep" ? null : "keep"); } }, "Keep"),
      el("button", { type: "button", class: `trash-btn ${m.decision === "trash" ? "on" : ""}`, disabled: m.in_trash,
                     onclick: (e) => { e.stopPropagation(); decide(m, m.decision === "trash" ? null : "trash"); } }, "Trash")));
}

function select(index) {
  if (!state.group || index < 0 || index >= state.group.members.length) return;
  state.selected = index;
  renderGroup();
  if (!$("viewer").hidden) openViewer(index);
}

async function afterChange(group) {
  if (!group) return;
  state.group = group;
  await loadOverview();
  renderGroup();
}

const decide = (m, action) => guarded(async () =>
  afterChange(await api("POST", `/api/groups/${state.group.id}/decision`, { file_id: m.file_id, action })));

const keepSelected = () => guarded(async () => {
  const m = state.group.members[state.selected];
  await afterChange(await api("POST", `/api/groups/${state.group.id}/keep`, { file_id: m.file_id }));
  toast(`Keeping ${m.path.split("/").pop()}, the rest marked trash`);
});

const notDuplicates = () => guarded(async () => {
  const value = state.group.state !== "dismissed";
  await afterChange(await api("POST", `/api/groups/${state.group.id}/not-duplicates`, { value }));
  toast(value ? "Marked not duplicates (remembered by content)" : "No longer marked not duplicates");
});

const resetGroup = () => guarded(async () => afterChange(await api("POST", `/api/groups/${state.group.id}/reset`)));

function step(delta) {
  if (!state.group) return;
  const position = state.order.indexOf(state.group.id);
  const next = state.order[position + delta];
  if (next !== undefined) location.hash = `#/group/${next}`;
}

// -- full-size viewer ---------------------------------------------------------------------------
function openViewer(index) {
  const m = state.group.members[index];
  state.selected = index;
  $("viewer-image").src = `/files/${m.file_id}/image`;
  $("viewer-caption").textContent = `${index + 1}. ${m.path} · ${m.width} × ${m.height} · ${human(m.size)}`;
  $("viewer").hidden = false;
}

function closeViewer() {
  $("viewer").hidden = true;
  $("viewer-image").removeAttribute("src");
  renderGroup();
}

// -- apply and undo -----------------------------------------------------------------------------
function ask(title, body, okLabel) {
  return new Promise((resolve) => {
    $("dialog-title").textContent = title;
    $("dialog-body").replaceChildren(...body.filter(Boolean));
    $("dialog-ok").textContent = okLabel;
    $("dialog-ok").hidden = !okLabel;
    $("dialog").hidden = false;
    const done = (answer) => { $("dialog").hidden = true; $("dialog-ok").onclick = $("dialog-cancel").onclick = null; resolve(answer); };
    $("dialog-ok").onclick = () => done(true);
    $("dialog-cancel").onclick = () => done(false);
  });
}

function planList(summary) {
  const items = summary.moved.map((m) => el("li", {}, el("span", { class: "path" }, m.path), ` (${human(m.size)})`));
  const skips = summary.skipped.map((s) => el("li", { class: "skip" }, el("span", { class: "path" }, s.path), ` — ${s.reason}`));
  return [
    el("p", {}, `${summary.moved.length} files (${human(summary.bytes_moved)}) into `, el("code", {}, summary.trash_dir),
       ". Nothing is deleted; undo puts them back."),
    items.length ? el("ul", { id: "plan-moves" }, items) : el("p", {}, "Nothing to move."),
    skips.length ? el("p", {}, `Skipped ${skips.length}:`) : null,
    skips.length ? el("ul", { id: "plan-skips" }, skips) : null,
  ];
}

const applyMarked = () => guarded(async () => {
  const plan = await api("POST", "/api/apply", { dry_run: true });
  const ok = await ask("Move the files marked trash?", planList(plan), plan.moved.length ? "Move to trash" : null);
  if (!ok) return;
  const done = await api("POST", "/api/apply", { dry_run: false });
  toast(`Moved ${done.moved.length} files to the trash (apply ${done.apply_id})`);
  await refresh();
});

const undoLast = () => guarded(async () => {
  const done = await api("POST", "/api/undo");
  const refused = done.refused.length ? `, refused ${done.refused.length}: ${done.refused[0].reason}` : "";
  toast(`Restored ${done.restored.length} files${refused}`, done.refused.length > 0);
  await refresh();
});

async function refresh() {
  if (state.group && !$("group-view").hidden) await showGroup(state.group.id);
  else await showOverview();
}

// -- routing and keys ---------------------------------------------------------------------------
function route() {
  const match = location.hash.match(/^#\/group\/(\d+)$/);
  guarded(() => (match ? showGroup(Number(match[1])) : showOverview()));
}

document.addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey || event.target.matches("input, select, textarea")) return;
  if (!$("dialog").hidden) {
    if (event.key === "Escape") $("dialog-cancel").click();
    return;
  }
  const inGroup = !$("group-view").hidden && state.group;
  const key = event.key;
  if (key === "Escape") {
    if (!$("viewer").hidden) closeViewer();
    else if (inGroup) location.hash = "#/";
    return;
  }
  if (!inGroup) return;
  const m = state.group.members[state.selected];
  if (key === "n" || key === "ArrowRight") step(1);
  else if (key === "p" || key === "ArrowLeft") step(-1);
  else if (/^[1-9]$/.test(key)) select(Number(key) - 1);
  else if (key === "k") keepSelected();
  else if (key === "t" && m && !m.in_trash) decide(m, m.decision === "trash" ? null : "trash");
  else if (key === "d") notDuplicates();
  else if (key === "u") resetGroup();
  else if (key === "f" || key === "Enter") openViewer(state.selected);
  else return;
  event.preventDefault();
});

$("viewer").addEventListener("click", closeViewer);
$("prev-group").addEventListener("click", () => step(-1));
$("next-group").addEventListener("click", () => step(1));
$("keep-selected").addEventListener("click", keepSelected);
$("not-duplicates").addEventListener("click", notDuplicates);
$("reset-group").addEventListener("click", resetGroup);
$("apply-button").addEventListener("click", applyMarked);
$("undo-button").addEventListener("click", undoLast);
$("kind-filter").addEventListener("change", (e) => { state.kind = e.target.value; showOverview(); });
$("sort-order").addEventListener("change", (e) => { state.sort = e.target.value; showOverview(); });
window.addEventListener("hashchange", route);
route();
