// photodedup review: plain JavaScript, no build step. Every text from the catalog goes in through
// textContent (never innerHTML), and every state-changing request carries the session token.
"use strict";

const TOKEN = document.querySelector('meta[name="photodedup-token"]').content;
const $ = (id) => document.getElementById(id);
const state = { order: [], summaries: new Map(), totals: null, group: null, selected: 0, kind: "", sort: "size",
                lastAccept: [] };

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

// What travels with a member (duplicate_groups.Member.item_words): "RAW+JPEG pair", "Live Photo + sidecars", ...
function itemWords(m) {
  const kinds = new Set(m.companions.map((c) => c.evidence));
  return [["pair", "RAW+JPEG pair"], ["live", "Live Photo"], ["sidecar", "sidecars"]]
    .filter(([kind]) => kinds.has(kind)).map(([, word]) => word).join(" + ");
}

function human(bytes) {
  if (bytes === null || bytes === undefined) return "?";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = bytes, unit = 0;
  while (value >= 1000 && unit < units.length - 1) { value /= 1000; unit++; }  // 1000-based, as in the CLI
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}

// Two sizes with enough digits to tell them apart ("4.31 MB" and "4.34 MB", not "4.3 MB" twice).
function humanPair(a, b) {
  for (let digits = 1; digits <= 6; digits++) {
    const [x, y] = [a, b].map((v) => humanDigits(v, digits));
    if (x !== y || a === b) return [x, y];
  }
  return [`${a} B`, `${b} B`];
}

function humanDigits(bytes, digits) {
  if (bytes === null || bytes === undefined) return "?";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = bytes, unit = 0;
  while (value >= 1000 && unit < units.length - 1) { value /= 1000; unit++; }
  return unit === 0 ? `${value} B` : `${value.toFixed(digits)} ${units[unit]}`;
}

// A toast belongs to the view it was shown on (a group, or the overview): showing another view hides it,
// so a message about one group never stands over the next one.
function toast(message, isError = false) {
  const box = $("toast");
  box.textContent = message;
  box.className = isError ? "toast error" : "toast";
  box.hidden = false;
  box.dataset.view = currentView();
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { box.hidden = true; }, isError ? 6000 : 3000);
}

function currentView() {
  return state.group && !$("group-view").hidden ? `group ${state.group.id}` : "overview";
}

function leaveView() {
  if ($("toast").dataset.view !== currentView()) $("toast").hidden = true;
}

async function guarded(action) {
  try { return await action(); } catch (error) { toast(error.message, true); return null; }
}

// -- one action at a time ------------------------------------------------------------------------
// Every key and button goes through this queue: an action starts only when the one before it has
// finished (its request answered and the page redrawn), and reads the group on screen when it
// starts. A key pressed during a slow request therefore acts on the group the person sees next,
// never on a group that has already left the screen.
let queue = Promise.resolve();
function run(action) {
  queue = queue.then(() => guarded(action));
  return queue;
}

// -- overview -----------------------------------------------------------------------------------
// ``state.order`` is the list the person navigates (prev/next, "2 of 9"). It is taken from the server
// only when the overview is shown or its filter changes, never after a decision: deciding must not
// reshuffle the list under the person's feet (a dismissed group frees nothing and would sort last).
async function loadOverview(reorder = false) {
  const query = new URLSearchParams({ sort: state.sort });
  if (state.kind) query.set("kind", state.kind);
  const data = await api("GET", `/api/overview?${query}`);
  if (reorder || !state.order.length) state.order = data.groups.map((g) => g.id);
  state.summaries = new Map(data.groups.map((g) => [g.id, g]));
  state.totals = data.totals;
  renderTotals();
  renderKinds();
  return data;
}

// The evidence filter lists every kind the server knows (with how many groups have it as their kind).
function renderKinds() {
  const select = $("kind-filter");
  const kinds = Object.entries(state.totals.kinds || {});
  select.replaceChildren(el("option", { value: "" }, "all"),
    ...kinds.map(([kind, count]) => el("option", { value: kind }, `${kind} (${count})`)));
  select.value = state.kind;
}

function renderTotals() {
  const t = state.totals;
  $("progress-text").textContent = `${t.reviewed} / ${t.groups} groups reviewed`;
  $("progress-fill").style.width = t.groups ? `${(100 * t.reviewed) / t.groups}%` : "0";
  $("marked").textContent = human(t.marked_trash);
  $("reclaimable").textContent = human(t.reclaimable);
}

async function showOverview() {
  state.group = null;
  $("group-view").hidden = true;
  $("overview-view").hidden = false;
  const data = await loadOverview(true);
  const list = $("group-list");
  list.replaceChildren(...data.groups.map(groupCard));
  $("empty").hidden = data.groups.length > 0;
  $("shown-count").textContent = `${data.totals.shown} of ${data.totals.groups} groups`;
  const open = data.groups.filter((g) => g.state === "open").length;
  $("accept-button").disabled = open === 0;
  $("accept-button").textContent = `Accept suggested keepers (${open} undecided groups shown)…`;
  $("undo-accept").hidden = state.lastAccept.length === 0;
  $("undo-accept").textContent = `Undo accept (${state.lastAccept.length} groups)`;
  document.title = "photodedup review";
  leaveView();
}

function groupCard(g) {
  const thumbs = g.files.slice(0, 4).map((id) => el("img", { src: `/files/${id}/thumb`, alt: "", loading: "lazy" }));
  const open = () => { location.hash = `#/group/${g.id}`; };
  return el("li", { class: "group-card", tabindex: "0", dataset: { group: g.id }, onclick: open,
                    onkeydown: (e) => { if (e.key === "Enter" && !$("overview-view").hidden) { e.stopPropagation(); open(); } } },
    el("div", { class: "strip" }, thumbs),
    el("div", { class: "line" },
      el("strong", {}, `Group ${g.id}`), el("span", { class: `badge ${g.kind}` }, g.kind),
      el("span", {}, `${g.count} files`), el("span", { class: `state ${g.state}` }, g.state)),
    el("div", { class: "line muted" },
      el("span", {}, `${human(g.reclaimable)} to free`), el("span", {}, `score ${g.score.toFixed(3)}`),
      el("span", {}, `keeper: ${g.keeper_reason}`)));
}

// Bulk: the suggested keepers of the undecided groups the current filter shows, after a confirmation
// that says how many files would be marked trash and how much space that frees. Nothing moves until Apply.
const acceptShown = () => run(async () => {
  if ($("overview-view").hidden) return;
  const ids = [...state.summaries.values()].filter((g) => g.state === "open").map((g) => g.id);
  if (!ids.length) { toast("No undecided group is shown"); return; }
  const plan = await api("POST", "/api/accept", { group_ids: ids, dry_run: true });
  const items = plan.trash.map((t) => el("li", {}, el("span", { class: "path" }, t.path), ` (${human(t.size)})`));
  const ok = await ask(`Accept the suggested keepers of ${plan.groups.length} groups?`, [
    el("p", { id: "accept-summary" }, `${plan.files} files would be marked trash, freeing ${human(plan.bytes)} once applied. ` +
       "Each group's suggested keeper (and any file in a reference folder) is marked keep. Nothing moves until Apply."),
    items.length ? el("ul", { id: "accept-files" }, items) : null,
  ], "Mark them");
  if (!ok) return;
  const done = await api("POST", "/api/accept", { group_ids: ids, dry_run: false });
  state.lastAccept = done.groups;
  await showOverview();
  toast(`Marked ${done.files} files trash in ${done.groups.length} groups (Undo accept takes it back)`);
});

// Take back the last bulk accept: the groups still exactly as it left them go back to undecided.
const undoAccept = () => run(async () => {
  if (!state.lastAccept.length) return;
  const done = await api("POST", "/api/accept/undo", { group_ids: state.lastAccept });
  state.lastAccept = [];
  await showOverview();
  const kept = done.skipped.length ? `; ${done.skipped.length} decided since, left as they are` : "";
  toast(`Took back the suggested keepers of ${done.groups.length} groups${kept}`);
});

// -- one group ----------------------------------------------------------------------------------
async function showGroup(id) {
  if (!state.totals) await loadOverview();
  const group = await api("GET", `/api/groups/${id}`);
  if (!state.group || state.group.id !== group.id) {
    const keeper = group.members.findIndex((m) => m.keeper);
    state.selected = Math.max(0, keeper);
  }
  state.group = group;
  // The clicked card keeps the focus until the browser notices it is hidden; its own Enter handler would
  // take the person's next Enter (re-opening this group) instead of the page's keepSelected.
  if ($("overview-view").contains(document.activeElement)) document.activeElement.blur();
  $("overview-view").hidden = true;
  $("group-view").hidden = false;
  renderGroup();
  leaveView();
}

function renderGroup() {
  const g = state.group;
  state.selected = Math.min(state.selected, Math.max(0, g.members.length - 1));
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
  $("removed").hidden = g.removed_members.length === 0;
  $("removed-list").replaceChildren(...g.removed_members.map(removedItem));
  document.title = `Group ${g.id} · photodedup review`;
  const focused = $("members").children[state.selected];
  if (focused && focused.scrollIntoView) focused.scrollIntoView({ block: "nearest" });
}

function bestValues(members) {
  const max = (f) => Math.max(...members.map(f));
  return { pixels: max((m) => (m.width || 0) * (m.height || 0)), size: max((m) => m.size || 0) };
}

function memberCard(m, index, best) {
  const tags = [];
  if (m.keeper) tags.push(el("span", { class: "tag keeper", title: "suggested keeper" }, `★ suggested keeper`));
  if (m.reference) tags.push(el("span", { class: "tag reference", title: "in a reference folder: never trashed" }, "REFERENCE"));
  if (m.in_trash) tags.push(el("span", { class: "tag in-trash" }, "IN TRASH"));
  else if (m.decision) tags.push(el("span", { class: `tag ${m.decision}` }, m.decision.toUpperCase()));
  const pixels = (m.width || 0) * (m.height || 0);
  const classes = ["member", m.decision || "", index === state.selected ? "selected" : ""].join(" ");
  const row = (label, value, cls = null) => [el("dt", {}, label), el("dd", { class: cls }, value)];
  const content = m.content_width && (m.content_width !== m.width || m.content_height !== m.height)
    ? ` (content ${m.content_width} × ${m.content_height})` : "";
  const dismissed = state.group.state === "dismissed";  // reopen it (d) before deciding
  const button = (label, cls, onclick, extra = {}) => el("button", { type: "button", class: cls, ...extra,
    onclick: (e) => { e.stopPropagation(); e.currentTarget.blur(); onclick(); } }, label);
  return el("article", { class: classes, dataset: { file: m.file_id }, onclick: () => select(index) },
    el("span", { class: "number" }, index + 1),
    el("div", { class: "photo", title: "full size (f)", onclick: () => openViewer(index) },
      el("img", { src: `/files/${m.file_id}/thumb`, alt: m.path })),
    el("h3", { class: "name", title: m.path }, m.path.split("/").pop()),
    el("div", { class: "tags" }, tags),
    m.companions.length ? el("p", { class: "pair" }, `${itemWords(m)}, kept or trashed together: `,
      ...m.companions.map((c) => el("span", { class: "path", title: c.path }, `+ ${c.path.split("/").pop()} (${c.format}, ${human(c.size)})`))) : [],
    el("dl", {},
      row("dimensions", m.width ? `${m.width} × ${m.height}${content}` : "?", pixels === best.pixels && pixels > 0 ? "best" : null),
      row("file size", human(m.size), m.size === best.size ? "best" : null),
      row("taken", m.taken_at ? m.taken_at.replace("T", " ") : "—"),
      row("camera", m.camera || "—"),
      row("format", `${m.format || "?"}${m.grayscale ? ", grayscale" : ""}`),
      row("evidence", m.keeper ? "keeper" : m.evidence_words),
      m.keeper ? row("why keep", state.group.keeper_reason) : row("not kept", m.note || "—", "why-not"),
      row("path", el("span", { class: "path" }, m.path)),
      ...m.companions.map((c) => row("pair", el("span", { class: "path" }, c.path)))),
    el("div", { class: "buttons" },
      button("Keep", `keep-btn ${m.decision === "keep" ? "on" : ""}`, () => run(() => decide(m.file_id, m.decision === "keep" ? null : "keep")),
             { disabled: m.in_trash || dismissed, title: "Space: toggle keep on the focused photo" }),
      button("Trash", `trash-btn ${m.decision === "trash" ? "on" : ""}`, () => run(() => decide(m.file_id, m.decision === "trash" ? null : "trash")),
             { disabled: m.in_trash || m.reference || dismissed, title: "t: toggle trash on the focused photo" }),
      button("Compare", "small compare-btn", () => run(() => openCompare(index)), { title: "c" }),
      button("Not a duplicate", "small out-btn", () => run(() => takeOut(m.file_id, true)),
             { title: "x: take this photo out of the group", disabled: m.in_trash })));
}

function removedItem(m) {
  return el("div", { class: "removed-item", dataset: { file: m.file_id } },
    el("img", { src: `/files/${m.file_id}/thumb`, alt: m.path }),
    el("span", { class: "path", title: m.path }, m.path.split("/").pop()),
    el("button", { type: "button", class: "put-back", onclick: () => run(() => takeOut(m.file_id, false)) }, "Put back"));
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

// Each action names the group on screen when it runs (never one captured earlier).
const decide = async (fileId, action) =>
  afterChange(await api("POST", `/api/groups/${state.group.id}/decision`, { file_id: fileId, action }));

// Enter: keep the focused photo, trash the rest, and go on to the next group that waits for a decision
// (one key a group); the confirmation names the group it was about.
async function keepSelected() {
  const m = state.group.members[state.selected];
  const id = state.group.id;
  await afterChange(await api("POST", `/api/groups/${id}/keep`, { file_id: m.file_id }));
  const moved = await nextUndecided();
  toast(`Group ${id}: keeping ${m.path.split("/").pop()}, the rest marked trash${moved ? "" : "; every group has a decision"}`);
}

async function takeOut(fileId, value) {
  await afterChange(await api("POST", `/api/groups/${state.group.id}/take-out`, { file_id: fileId, value }));
  toast(value ? "Taken out of this group (remembered by content)" : "Put back into the group");
}

async function notDuplicates() {
  const value = state.group.state !== "dismissed";
  const id = state.group.id;
  await afterChange(await api("POST", `/api/groups/${id}/not-duplicates`, { value }));
  const moved = value && await nextUndecided();
  toast(value ? `Marked not duplicates: group ${id} (remembered by content)${moved ? "" : "; every group has a decision"}`
    : "No longer marked not duplicates");
}

// Go to the first group after this one (then from the start) that still waits for a decision; false if none.
async function nextUndecided() {
  const position = state.order.indexOf(state.group.id);
  const rest = [...state.order.slice(position + 1), ...state.order.slice(0, Math.max(position, 0))];
  const next = rest.find((id) => ["open", "partial"].includes((state.summaries.get(id) || {}).state));
  if (next === undefined) return false;
  await go(next);
  return true;
}

const resetGroup = async () => afterChange(await api("POST", `/api/groups/${state.group.id}/reset`));

async function step(delta) {
  if (!state.group) return;
  const position = state.order.indexOf(state.group.id);
  const next = state.order[position + delta];
  if (position >= 0 && next !== undefined) await go(next);
}

// Show a group and put it in the address bar (the hashchange that follows finds it shown already).
async function go(id) {
  await showGroup(id);
  if (location.hash !== `#/group/${id}`) location.hash = `#/group/${id}`;
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

// -- side-by-side compare at one zoom -----------------------------------------------------------
// Both images are drawn at the same scale (screen pixels per image pixel), so a smaller copy looks
// smaller and a border or a crop shows as what it is; the panes scroll together.
const compare = { zoom: 1, fit: 1 };

async function openCompare(index) {
  const g = state.group;
  const b = g.members[index];
  const other = g.members.find((m) => m.keeper && m.file_id !== b.file_id) || g.members.find((m) => m.file_id !== b.file_id);
  if (!other) return;
  const data = await api("GET", `/api/groups/${g.id}/compare?a=${other.file_id}&b=${b.file_id}`);
  $("difference-words").textContent = `pixels: ${data.pixels.words}`;
  $("difference-map").src = `/api/groups/${g.id}/difference.png?a=${other.file_id}&b=${b.file_id}`;
  $("differences").replaceChildren(...(data.differences.length ? data.differences : ["no difference the tool knows of"])
    .map((d) => el("li", {}, d)));
  const sizes = humanPair(data.a.size, data.b.size);
  const caption = (m, size) => `${m.keeper ? "★ keeper · " : ""}${m.path} · ${m.width} × ${m.height} · ${m.format || "?"} · ${size}`;
  $("caption-a").textContent = caption(data.a, sizes[0]);
  $("caption-b").textContent = caption(data.b, sizes[1]);
  $("compare").hidden = false;
  const loaded = (img, src) => new Promise((resolve) => {
    img.onload = img.onerror = () => resolve();
    img.src = src;
  });
  await Promise.all([loaded($("compare-a"), `/files/${data.a.file_id}/image`), loaded($("compare-b"), `/files/${data.b.file_id}/image`)]);
  const pane = $("pane-a");
  const widest = Math.max($("compare-a").naturalWidth, $("compare-b").naturalWidth, 1);
  const tallest = Math.max($("compare-a").naturalHeight, $("compare-b").naturalHeight, 1);
  compare.fit = Math.min(pane.clientWidth / widest, pane.clientHeight / tallest, 1);
  compare.zoom = compare.fit;
  drawCompare();
}

function drawCompare() {
  for (const img of [$("compare-a"), $("compare-b")]) {
    img.style.width = `${Math.round(img.naturalWidth * compare.zoom)}px`;
    img.style.height = `${Math.round(img.naturalHeight * compare.zoom)}px`;
  }
  $("zoom-level").textContent = `${Math.round(compare.zoom * 100)}%`;
}

function zoom(factor) {
  compare.zoom = factor === 0 ? 1 : Math.min(8, Math.max(compare.fit / 4, compare.zoom * factor));
  drawCompare();
}

function closeCompare() {
  $("compare").hidden = true;
  for (const img of [$("compare-a"), $("compare-b"), $("difference-map")]) img.removeAttribute("src");
}

for (const [from, to] of [["pane-a", "pane-b"], ["pane-b", "pane-a"]]) {
  $(from).addEventListener("scroll", () => {
    if ($(to).scrollLeft !== $(from).scrollLeft) $(to).scrollLeft = $(from).scrollLeft;
    if ($(to).scrollTop !== $(from).scrollTop) $(to).scrollTop = $(from).scrollTop;
  });
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
  const failed = (summary.failed || []).map((f) => el("li", { class: "skip" }, el("span", { class: "path" }, f.path), ` — ${f.reason}`));
  return [
    el("p", {}, `${summary.moved.length} files (${human(summary.bytes_moved)}) into `, el("code", {}, summary.trash_dir),
       ". Nothing is deleted; undo puts them back."),
    items.length ? el("ul", { id: "plan-moves" }, items) : el("p", {}, "Nothing to move."),
    skips.length ? el("p", {}, `Skipped ${skips.length}:`) : null,
    skips.length ? el("ul", { id: "plan-skips" }, skips) : null,
    failed.length ? el("p", {}, `Could not move ${failed.length} (each rolled back, still in place):`) : null,
    failed.length ? el("ul", { id: "plan-failed" }, failed) : null,
  ];
}

const applyMarked = () => run(async () => {
  const plan = await api("POST", "/api/apply", { dry_run: true });
  const ok = await ask("Move the files marked trash?", planList(plan), plan.moved.length ? "Move to trash" : null);
  if (!ok) return;
  const done = await api("POST", "/api/apply", { dry_run: false });
  toast(`Moved ${done.moved.length} files to the trash (apply ${done.apply_id})`);
  await refresh();
});

const undoLast = () => run(async () => {
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
  if (match && state.group && state.group.id === Number(match[1]) && !$("group-view").hidden) return;
  run(() => (match ? showGroup(Number(match[1])) : showOverview()));
}

const GROUP_KEYS = {
  j: () => select(state.selected + 1), ArrowRight: () => select(state.selected + 1), ArrowDown: () => select(state.selected + 1),
  k: () => select(state.selected - 1), ArrowLeft: () => select(state.selected - 1), ArrowUp: () => select(state.selected - 1),
  n: () => step(1), PageDown: () => step(1), p: () => step(-1), PageUp: () => step(-1),
  Enter: keepSelected,
  " ": () => toggle("keep"),
  t: () => toggle("trash"),
  x: () => { const m = state.group.members[state.selected]; return m && takeOut(m.file_id, true); },
  c: () => openCompare(state.selected),
  d: notDuplicates,
  u: resetGroup,
  f: () => openViewer(state.selected),
};

function toggle(action) {
  const m = state.group.members[state.selected];
  if (!m || m.in_trash) return null;
  return decide(m.file_id, m.decision === action ? null : action);
}

document.addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey || event.target.matches("input, select, textarea")) return;
  const key = event.key;
  if (!$("dialog").hidden) {
    if (key === "Escape") $("dialog-cancel").click();
    return;
  }
  if (!$("compare").hidden) {
    // through the queue, so a "j"/"k" still loading its photo cannot reopen what Escape closed
    if (key === "Escape" || key === "c") run(async () => closeCompare());
    else if (key === "j" || key === "k") {  // the next (previous) photo of the group against the keeper
      const next = state.selected + (key === "j" ? 1 : -1);
      if (next >= 0 && next < state.group.members.length) run(async () => { state.selected = next; await openCompare(next); });
    }
    else if (key === "+" || key === "=") zoom(1.25);
    else if (key === "-") zoom(0.8);
    else if (key === "0") zoom(0);
    else return;
    event.preventDefault();
    return;
  }
  if (key === "Escape") {
    if (!$("viewer").hidden) closeViewer();
    else if (!$("group-view").hidden) location.hash = "#/";
    return;
  }
  if (!$("overview-view").hidden && key === "a") {
    event.preventDefault();
    acceptShown();
    return;
  }
  if (/^[1-9]$/.test(key)) {
    event.preventDefault();
    run(async () => { if (state.group && !$("group-view").hidden) select(Number(key) - 1); });
    return;
  }
  const handler = GROUP_KEYS[key];
  if (!handler || $("group-view").hidden) return;
  event.preventDefault();
  run(async () => { if (state.group && !$("group-view").hidden) await handler(); });
});

// A clicked button gives the focus back, so that Enter and Space stay the page's keys.
document.addEventListener("click", (event) => { const button = event.target.closest("button"); if (button) button.blur(); });
$("viewer").addEventListener("click", closeViewer);
$("prev-group").addEventListener("click", () => run(() => step(-1)));
$("next-group").addEventListener("click", () => run(() => step(1)));
$("keep-selected").addEventListener("click", () => run(keepSelected));  // refused by the server when dismissed
$("not-duplicates").addEventListener("click", () => run(notDuplicates));
$("reset-group").addEventListener("click", () => run(resetGroup));
$("apply-button").addEventListener("click", applyMarked);
$("undo-button").addEventListener("click", undoLast);
$("accept-button").addEventListener("click", acceptShown);
$("undo-accept").addEventListener("click", undoAccept);
$("compare-close").addEventListener("click", closeCompare);
$("zoom-in").addEventListener("click", () => zoom(1.25));
$("zoom-out").addEventListener("click", () => zoom(0.8));
$("zoom-actual").addEventListener("click", () => zoom(0));
$("kind-filter").addEventListener("change", (e) => { state.kind = e.target.value; run(showOverview); });
$("sort-order").addEventListener("change", (e) => { state.sort = e.target.value; run(showOverview); });
window.addEventListener("hashchange", route);
route();
