// sfumato app: plain JavaScript, no framework, no build step, nothing loaded from the network.
// Every name and message from the server is inserted as text (textContent), never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  info: null,
  images: [], // accepted uploads: {id, name, width, height, bytes, notes}
  targets: [],
  previewId: null,
  jobId: null,
  job: null,
  poll: null,
  viewerItem: null,
};

// ------------------------------------------------------------------------------------------ helpers

async function api(method, url, body) {
  const options = { method, headers: { "X-Sfumato": "1" } };
  if (body instanceof FormData) options.body = body;
  else if (body !== undefined) {
    options.body = JSON.stringify(body);
    options.headers["Content-Type"] = "application/json";
  }
  let response;
  try {
    response = await fetch(url, options);
  } catch (e) {
    // No answer at all (the server is stopped or restarting): the callers retry by themselves.
    const offline = new Error("the app is not answering");
    offline.offline = true;
    setOnline(false);
    throw offline;
  }
  setOnline(true);
  let data = null;
  try { data = await response.json(); } catch (e) { data = null; }
  if (!response.ok && !(data && (data.accepted || data.rejected))) {
    const message = data && data.error ? data.error : `${response.status} ${response.statusText}`;
    const error = new Error(message);
    error.status = response.status;
    throw error;
  }
  return data;
}

// The connection: a banner while the server does not answer; every poll goes on by itself meanwhile.
function setOnline(online) {
  const banner = $("connection");
  if (banner) banner.hidden = online;
  if (online && !state.info && state.initWaiting) { state.initWaiting = false; init(); }
}

const RETRY_MS = 2000;

// The choices survive a reload: the page keeps the upload ids (never the images) in this browser.
const SAVED = "sfumato.choices";

function saveChoices() {
  if (!state.restored) return; // not before the saved choices were read back
  const checked = (name) => { const input = document.querySelector(`input[name=${name}]:checked`); return input ? input.value : null; };
  const choices = {
    images: state.images, targets: state.targets, mode: mode(), style: checked("style"),
    intensity: checked("intensity"), speed: checked("speed"), family: checked("family"),
    concept: $("concept").value, as_concept: $("as-concept").value,
  };
  try { localStorage.setItem(SAVED, JSON.stringify(choices)); } catch (e) { /* private mode: no memory */ }
}

async function restoreChoices() {
  let saved = null;
  try { saved = JSON.parse(localStorage.getItem(SAVED) || "null"); } catch (e) { saved = null; }
  if (saved) {
    const still = async (list) => {
      const kept = [];
      for (const upload of list || []) {
        try { kept.push(await api("GET", `/api/uploads/${upload.id}`)); } catch (e) { /* deleted: drop it */ }
      }
      return kept;
    };
    state.images.push(...await still(saved.images));
    state.targets.push(...await still(saved.targets));
    const check = (name, value) => {
      const input = value && document.querySelector(`input[name=${name}][value="${CSS.escape(value)}"]`);
      if (input) input.checked = true;
    };
    check("mode", saved.mode); check("style", saved.style); check("intensity", saved.intensity); check("speed", saved.speed);
    check("family", saved.family);
    $("concept").value = saved.concept || "";
    $("as-concept").value = saved.as_concept || "";
  }
  state.restored = true;
}

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "text") node.textContent = value;
    else if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

function mb(n) {
  if (n < 1 << 20) return `${Math.max(1, Math.round(n / 1024))} KB`;
  const m = n / (1 << 20);
  return `${m >= 10 || Number.isInteger(m) ? Math.round(m) : m.toFixed(1)} MB`;
}
const pct = (f) => `${Math.round(f * 100)} %`;
const num = (v, digits) => (typeof v === "number" ? v.toFixed(digits) : "–");

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "estimating time left…";
  if (seconds < 1) return "almost done";
  if (seconds < 90) return `about ${Math.ceil(seconds)} s left`;
  if (seconds < 5400) return `about ${Math.round(seconds / 60)} min left`;
  return `about ${(seconds / 3600).toFixed(1)} h left`;
}

// ------------------------------------------------------------------------------------------ uploads

function isImageFile(file) {
  return /\.(png|jpe?g|webp|tiff?|bmp|gif)$/i.test(file.name) || file.type.startsWith("image/");
}

async function uploadFiles(files, list, render, fromFolder, holder) {
  const errors = $("upload-errors");
  const limit = state.info ? state.info.max_upload_bytes : Infinity;
  for (const file of files) {
    if (fromFolder && !isImageFile(file)) continue; // a folder holds other files too: skip them quietly
    const name = file.webkitRelativePath || file.name;
    if (file.size > limit) {
      errors.append(el("li", { text: `${name} is ${mb(file.size)}, larger than the limit of ${mb(limit)} a file` }));
      continue;
    }
    const placeholder = el("li", { class: "pending" }, el("span", { class: "name", text: `uploading ${name}…` }));
    holder.append(placeholder);
    const form = new FormData();
    form.append("files", file, file.name);
    try {
      const result = await api("POST", "/api/uploads", form);
      for (const upload of result.accepted) list.push(upload);
      for (const bad of result.rejected) errors.append(el("li", { text: bad.error }));
    } catch (e) {
      errors.append(el("li", { text: `${name}: ${e.message}` }));
    } finally {
      placeholder.remove();
      render();
    }
  }
}

function thumbItem(upload, list, render) {
  const remove = el("button", {
    class: "remove", title: "Leave this image out", "aria-label": `Leave ${upload.name} out`,
    onclick: () => { list.splice(list.indexOf(upload), 1); render(); },
  }, "×");
  const notes = upload.notes.length ? el("span", { class: "meta", text: upload.notes.join("; ") }) : null;
  return el("li", { title: upload.name },
    el("img", { src: `/api/uploads/${upload.id}/thumb.png`, alt: "" }),
    el("span", { class: "name", text: upload.name }),
    el("span", { class: "meta", text: `${upload.width}×${upload.height} · ${mb(upload.bytes)}` }),
    notes, remove);
}

function renderImages() {
  const ul = $("images");
  ul.replaceChildren(...state.images.map((u) => thumbItem(u, state.images, renderImages)),
    ...ul.querySelectorAll("li.pending"));
  const select = $("preview-image");
  if (!state.images.some((u) => u.id === state.previewId)) state.previewId = state.images.length ? state.images[0].id : null;
  select.replaceChildren(...state.images.map((u) => el("option", { value: u.id, text: u.name })));
  if (state.previewId) select.value = state.previewId;
  $("preview-on").hidden = state.images.length < 2;
  renderStylePreviews();
  updateStart();
}

function renderTargets() {
  const ul = $("targets");
  ul.replaceChildren(...state.targets.map((u) => thumbItem(u, state.targets, renderTargets)),
    ...ul.querySelectorAll("li.pending"));
  updateStart();
}

function setUpDrop(zone, input, list, render, folderInput, holder) {
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    uploadFiles([...e.dataTransfer.files], list, render, false, holder);
  });
  input.addEventListener("change", () => { uploadFiles([...input.files], list, render, false, holder); input.value = ""; });
  if (folderInput) {
    folderInput.addEventListener("change", () => {
      uploadFiles([...folderInput.files], list, render, true, holder);
      folderInput.value = "";
    });
  }
}

// ------------------------------------------------------------------------------------------ choices

function mode() { return document.querySelector("input[name=mode]:checked").value; }

function renderChoices() {
  const c = state.info.choices;
  for (const m of c.modes) document.querySelector(`[data-help=${m.name}]`).textContent = m.help;
  $("styles").replaceChildren(...c.styles.map((s) =>
    el("label", { class: "style-card", title: s.help },
      el("input", Object.assign({ type: "radio", name: "style", value: s.name }, s.name === "auto" ? { checked: "" } : {})),
      el("img", { class: "preview", alt: "", "data-style": s.name }),
      el("b", { text: s.name }),
      el("span", { text: s.help }))));
  const presets = (holder, name, items, first = "default") => $(holder).replaceChildren(...items.map((p) =>
    el("label", {},
      el("input", Object.assign({ type: "radio", name, value: p.name }, p.name === first ? { checked: "" } : {})),
      " ", el("b", { text: p.label || p.name }), el("span", { text: `: ${p.help}` }))));
  presets("intensities", "intensity", c.intensities);
  presets("speeds", "speed", c.speeds);
  presets("families", "family", c.families, "auto");
  $("upload-limit").textContent = `PNG, JPEG, WebP, TIFF, BMP or still GIF, at least 64 px a side, up to ${mb(state.info.max_upload_bytes)} a file.`;
  $("version").textContent = `sfumato ${state.info.version}`;
}

function renderStylePreviews() {
  for (const img of document.querySelectorAll("#styles img.preview")) {
    const style = img.dataset.style;
    if (!state.previewId) { img.removeAttribute("src"); continue; }
    const src = style === "auto" ? `/api/uploads/${state.previewId}/thumb.png`
      : `/api/uploads/${state.previewId}/styles/${style}.png`;
    if (img.getAttribute("src") !== src) img.src = src;
  }
}

function showMode() {
  const m = mode();
  $("cloak-options").hidden = m !== "cloak";
  $("shade-options").hidden = m !== "shade";
  updateStart();
}

function updateStart() {
  const n = state.images.length;
  const button = $("start");
  button.textContent = n ? `Protect ${n} image${n === 1 ? "" : "s"}` : "Protect";
  let missing = n ? "" : "Add images first.";
  if (!missing && mode() === "shade") {
    if (!$("concept").value.trim() || !$("as-concept").value.trim()) missing = "Name both concepts.";
    else if (!state.targets.length) missing = "Add target images.";
  }
  button.disabled = Boolean(missing);
  button.title = missing;
  saveChoices();
  showEstimate();
}

async function showEstimate() {
  const line = $("estimate");
  const large = state.info ? state.images.filter((u) => u.width * u.height > state.info.large_pixels) : [];
  $("large-warnings").replaceChildren(...large.map((u) => el("li", {
    text: `${u.name} is large (${u.width}×${u.height}): it will take long and need a lot of memory. A smaller copy protects faster.`,
  })));
  if (!state.images.length) { line.textContent = ""; return; }
  const speed = document.querySelector("input[name=speed]:checked");
  const request = { images: state.images.map((u) => u.id), speed: speed ? speed.value : "default", mode: mode() };
  const key = JSON.stringify(request);
  state.estimateKey = key;
  let result;
  try { result = await api("POST", "/api/estimate", request); } catch (e) { return; }
  if (state.estimateKey !== key || result.seconds === null) return;
  const time = result.seconds < 10 ? "a few seconds" : duration(result.seconds).replace(" left", "").replace("about ", "");
  line.textContent = result.measured
    ? `This will take about ${time} on this computer (from the images it has protected so far).`
    : `This will take roughly ${time} (a first guess: the app learns this computer's speed as it works).`;
}

async function start() {
  const request = {
    mode: mode(),
    images: state.images.map((u) => u.id),
    intensity: document.querySelector("input[name=intensity]:checked").value,
    speed: document.querySelector("input[name=speed]:checked").value,
    family: document.querySelector("input[name=family]:checked").value,
  };
  if (request.mode === "cloak") request.style = document.querySelector("input[name=style]:checked").value;
  else Object.assign(request, {
    concept: $("concept").value, as_concept: $("as-concept").value, targets: state.targets.map((u) => u.id),
  });
  $("start-error").textContent = "";
  $("start").disabled = true;
  try {
    const job = await api("POST", "/api/jobs", request);
    // The images are the job's now: the next job starts from an empty form (and so does a reload).
    state.images.splice(0);
    state.targets.splice(0);
    renderImages();
    renderTargets();
    location.hash = `job=${job.id}`;
    loadJobs();
  } catch (e) {
    $("start-error").textContent = e.message;
  } finally {
    updateStart();
  }
}

// --------------------------------------------------------------------------------------------- jobs

function route() {
  const match = /^#job=([0-9a-f]{16})$/.exec(location.hash);
  closeViewer();
  if (match) openJob(match[1]);
  else {
    state.jobId = null;
    clearTimeout(state.poll);
    $("job").hidden = true;
    $("new-job").hidden = false;
    renderCurrent();
    if (location.hash === "#jobs") $("jobs").scrollIntoView();
  }
}

function openJob(id) {
  state.jobId = id;
  state.job = null;
  $("new-job").hidden = true;
  $("current").hidden = true;
  $("job").hidden = false;
  $("job-items").replaceChildren();
  $("job-error").textContent = "";
  pollJob();
}

async function pollJob() {
  clearTimeout(state.poll);
  const id = state.jobId;
  if (!id) return;
  let job;
  try {
    job = await api("GET", `/api/jobs/${id}`);
  } catch (e) {
    if (id !== state.jobId) return;
    if (e.offline) { state.poll = setTimeout(pollJob, RETRY_MS); return; } // resumes when the app answers
    $("job-error").textContent = e.status === 404 ? "This job is not there (it was deleted)." : `This job cannot be shown: ${e.message}`;
    return;
  }
  if (id !== state.jobId) return;
  const wasRunning = state.job && ["queued", "running"].includes(state.job.status);
  state.job = job;
  renderJob(job);
  if (["queued", "running"].includes(job.status)) state.poll = setTimeout(pollJob, 600);
  else if (wasRunning) loadJobs();
}

function jobTitle(job) {
  const n = job.items ? job.items.length : job.total;
  const what = job.mode === "cloak"
    ? `Style protection (${job.options.style})`
    : `Concept poisoning: ${job.options.concept} → ${job.options.as_concept}`;
  const family = (state.info ? state.info.choices.families : []).find((f) => f.name === job.options.family);
  const against = family ? `, against ${family.name === "auto" ? "all available generators" : family.label}` : "";
  return `${what}, ${n} image${n === 1 ? "" : "s"}, ${job.options.intensity} intensity, ${job.speed} speed${against}`;
}

// "1 of 3 done, 2 stopped": what happened to each image, never "protected" (the verdict says how much).
function countWords(statuses, total) {
  const n = (s) => statuses.filter((x) => x === s).length;
  const parts = [`${n("done")} of ${total} done`];
  if (n("failed")) parts.push(`${n("failed")} failed`);
  if (n("cancelled")) parts.push(`${n("cancelled")} stopped before they ran`);
  return parts.join(", ");
}

// {done: 2, cancelled: 1} -> ["done", "done", "cancelled"], for countWords.
function statusList(counts) { return Object.entries(counts).flatMap(([s, n]) => Array(n).fill(s)); }

function verdictNode(verdict) {
  if (!verdict) return null;
  const words = state.info.words.verdicts[verdict.level] || verdict.level;
  const why = verdict.why.charAt(0).toUpperCase() + verdict.why.slice(1);
  return el("div", { class: "verdict" },
    el("b", { class: `verdict-${verdict.level}`, text: words }),
    el("span", { class: "why", text: `${why}. ` }),
    el("a", { href: "/lab", target: "_blank", rel: "noopener", text: "What the lab found" }));
}

const PHASE_WORDS = { preparing: "loading and choosing the target…", protecting: "protecting…", measuring: "measuring the effect…" };
const STATUS_WORDS = { queued: "waiting to start", running: "protecting", done: "done", failed: "failed", cancelled: "cancelled" };

function renderJob(job) {
  $("job-title").textContent = jobTitle(job);
  $("job-bar").style.width = pct(job.progress.fraction).replace(" ", "");
  $("job-progress").textContent = pct(job.progress.fraction);
  $("job-status").textContent = `${STATUS_WORDS[job.status]} · ${countWords(job.items.map((i) => i.status), job.items.length)}`;
  const over = !["queued", "running"].includes(job.status);
  $("rerun-job").hidden = !(over && job.items.some((i) => ["cancelled", "failed"].includes(i.status)));
  $("delete-job").hidden = !over;
  $("job-eta").textContent = ["queued", "running"].includes(job.status) ? duration(job.progress.seconds_left) : "";
  $("job-error").textContent = job.error || "";
  $("cancel-job").hidden = !["queued", "running"].includes(job.status);
  const zip = $("download-zip");
  zip.hidden = !job.zip;
  if (job.zip) { zip.href = job.zip; zip.setAttribute("download", ""); }
  const rows = $("job-items");
  job.items.forEach((item, i) => {
    let row = rows.children[i];
    if (!row || row.dataset.key !== `${job.id}:${item.idx}:${item.status}`) {
      const fresh = itemRow(job, item);
      if (row) row.replaceWith(fresh); else rows.append(fresh);
      row = fresh;
    }
    const bar = row.querySelector(".progress > div");
    if (bar) bar.style.width = pct(item.fraction).replace(" ", "");
    if (item.status === "running" && job.progress.current === item.idx) {
      row.querySelector(".figs").textContent = PHASE_WORDS[job.progress.phase] || "protecting…";
    }
  });
}

function itemRow(job, item) {
  const row = el("tr", { "data-key": `${job.id}:${item.idx}:${item.status}` });
  let status;
  if (item.status === "done") {
    const r = item.report || {};
    const effect = r.effect || {};
    const q = effect.quality || {};
    const moved = Object.entries(effect.latents || {}).filter(([, f]) => f.attacked)
      .map(([name, f]) => `${name} latents moved ${pct(f.fraction_moved || 0)}`).join(", ");
    status = el("td", {}, verdictNode(item.verdict),
      el("details", {}, el("summary", { text: "Details" }),
        el("div", { class: "figs", text: `PSNR ${num(q.psnr_db, 1)} dB · ${moved}${r.style ? ` · target style ${r.style}` : ""}` })));
  } else if (item.status === "failed" || item.status === "cancelled") {
    const words = item.status === "cancelled" ? "stopped before it ran" : "failed";
    status = el("td", {}, el("span", { class: `status-${item.status}`, text: item.error || words }));
  } else {
    status = el("td", {}, el("div", { class: "progress" }, el("div")),
      el("div", { class: "figs", text: item.status === "running" ? "protecting…" : "waiting" }));
  }
  const actions = el("td", {});
  if (item.status === "done") {
    actions.append(el("button", { class: "compare", onclick: () => openViewer(item) }, "Before / after"), " ",
      el("a", { class: "button", href: item.urls.download, download: item.output_name }, "Download"));
  }
  row.append(el("td", {}, el("img", { src: item.urls.thumb, alt: "" })),
    el("td", { class: "name", text: item.name }), status, actions);
  return row;
}

async function cancelJob() {
  try { await api("POST", `/api/jobs/${state.jobId}/cancel`); } catch (e) { $("job-error").textContent = e.message; }
  pollJob();
}

async function rerunJob() {
  try { await api("POST", `/api/jobs/${state.jobId}/rerun`); } catch (e) { $("job-error").textContent = e.message; }
  pollJob();
  loadJobs();
}

async function deleteJob() {
  if (!confirm("Delete this job, its protected images and the uploaded copies no other job uses? Your own files are not touched.")) return;
  try {
    await api("DELETE", `/api/jobs/${state.jobId}`);
  } catch (e) {
    $("job-error").textContent = e.message;
    return;
  }
  location.hash = "";
  loadJobs();
}

// The home page opens with the running job, else the newest (from the last jobs list).
function renderCurrent() {
  const box = $("current");
  const job = state.jobs && state.jobs.find((j) => j.id === state.current);
  if (!job || state.jobId) { box.hidden = true; return; }
  box.hidden = false;
  const running = ["queued", "running"].includes(job.status);
  $("current-title").textContent = running ? "Your job in progress" : "Your latest job";
  $("current-link").textContent = jobTitle(job);
  $("current-link").href = `#job=${job.id}`;
  const processed = (job.counts.done || 0) + (job.counts.failed || 0);
  $("current-bar").style.width = `${Math.round(100 * processed / Math.max(job.total, 1))}%`;
  $("current-status").textContent = `${STATUS_WORDS[job.status]} · ${countWords(statusList(job.counts), job.total)}`;
}

async function loadJobs() {
  let data;
  clearTimeout(loadJobs.timer);
  try {
    data = await api("GET", "/api/jobs");
  } catch (e) {
    loadJobs.timer = setTimeout(loadJobs, RETRY_MS); // the list comes back with the app
    return;
  }
  state.jobs = data.jobs;
  state.current = data.current;
  renderCurrent();
  $("no-jobs").hidden = data.jobs.length > 0;
  $("job-list").replaceChildren(...data.jobs.map((job) => {
    const done = job.counts.done || 0;
    const when = new Date(job.created * 1000).toLocaleString();
    const bar = el("div", { class: "progress" }, el("div"));
    bar.firstChild.style.width = `${Math.round(100 * (done + (job.counts.failed || 0)) / Math.max(job.total, 1))}%`;
    return el("li", { "data-job": job.id },
      el("a", { href: `#job=${job.id}`, text: when }),
      el("span", { text: jobTitle(job) }), bar,
      el("span", { class: `job-status job-${job.status}`, text: `${STATUS_WORDS[job.status]} · ${countWords(statusList(job.counts), job.total)}` }));
  }));
  const running = data.jobs.some((j) => ["queued", "running"].includes(j.status));
  loadJobs.timer = setTimeout(loadJobs, running ? 3000 : 15000); // another tab may start a job
}

// ------------------------------------------------------------------------------------------- viewer

function openViewer(item) {
  state.viewerItem = item;
  $("viewer-name").textContent = item.name;
  for (const id of ["before-img", "side-before"]) $(id).src = item.urls.original;
  for (const id of ["after-img", "side-after"]) $(id).src = item.urls.protected;
  $("heat-img").src = item.urls.heatmap;
  $("viewer-download").href = item.urls.download;
  $("viewer-download").setAttribute("download", item.output_name);
  renderFigures(item.report || {}, item.seconds);
  $("viewer-verdict").replaceChildren(...[verdictNode(item.verdict)].filter(Boolean));
  $("viewer").hidden = false;
  applyView();
  $("viewer").scrollIntoView({ behavior: "smooth" });
}

function closeViewer() { $("viewer").hidden = true; state.viewerItem = null; }

function applyView() {
  const view = document.querySelector("input[name=view]:checked").value;
  $("view-slider").hidden = view !== "slider";
  $("slider").hidden = view !== "slider";
  $("slider-hint").hidden = view !== "slider";
  $("view-side").hidden = view !== "side";
  $("view-heat").hidden = view !== "heat";
  applyZoom();
}

function applyZoom() {
  const zoom = $("zoom").value;
  const item = state.viewerItem;
  if (!item) return;
  const report = item.report || {};
  const [w, h] = report.size || [0, 0];
  for (const id of ["before-img", "after-img", "side-before", "side-after", "heat-img"]) {
    const img = $(id);
    if (zoom === "fit" || !w) {
      img.style.width = "100%";
      img.style.height = "auto";
      img.style.maxWidth = "100%";
    } else {
      img.style.width = `${w * Number(zoom)}px`;
      img.style.height = `${h * Number(zoom)}px`;
      img.style.maxWidth = "none";
    }
  }
  $("layers").style.width = zoom === "fit" ? "100%" : "";
  document.body.classList.toggle("zoomed", zoom !== "fit" && Number(zoom) > 1);
  fitSlider();
  moveSlider();
}

function fitSlider() {
  // The range input spans the picture as far as it is visible, so its thumb sits on the divider.
  const shown = Math.min($("layers").getBoundingClientRect().width, $("view-slider").clientWidth);
  $("slider").style.width = shown > 0 ? `${shown}px` : "100%";
}

function dragSlider(event) {
  if (event.type !== "pointerdown" && !(event.buttons & 1)) return;
  const box = $("layers").getBoundingClientRect();
  $("slider").value = Math.round(Math.min(Math.max((event.clientX - box.left) / box.width, 0), 1) * 100);
  moveSlider();
}

function moveSlider() {
  const x = $("slider").value;
  $("after-img").style.clipPath = `inset(0 0 0 ${x}%)`;
  $("divider").style.left = `${x}%`;
}

function syncScroll(a, b) {
  // Setting b's position fires b's own scroll event, which finds a already there: no loop.
  a.addEventListener("scroll", () => {
    if (b.scrollLeft !== a.scrollLeft) b.scrollLeft = a.scrollLeft;
    if (b.scrollTop !== a.scrollTop) b.scrollTop = a.scrollTop;
  });
}

function renderFigures(report, seconds) {
  const effect = report.effect || {};
  const q = effect.quality || {};
  const latents = Object.entries(effect.latents || {});
  const words = state.info.words.figures;
  const rows = [];
  if (report.visibility) {
    rows.push(["At or above visibility", pct(report.visibility.visible_fraction), words.visible]);
    if (typeof report.visibility.peak_ratio === "number") {
      rows.push(["Largest change against visibility", pct(report.visibility.peak_ratio), words.peak]);
    }
  }
  rows.push(
    ["PSNR", `${num(q.psnr_db, 1)} dB`, words.psnr],
    ["SSIM", num(q.ssim, 3), words.ssim],
    ["Change in flat regions", num(q.flat_mean_change, 2), words.flat],
    ["Largest change", num(q.max_change, 1), words.max_change],
  );
  for (const [name, f] of latents.filter(([, f]) => f.attacked)) {
    rows.push([`Latent movement (${name})`, pct(f.fraction_moved || 0), words.moved]);
  }
  for (const [name, f] of latents.filter(([, f]) => !f.attacked)) {
    rows.push([`Transfer (${name})`, pct(f.fraction_moved || 0), words.transfer]);
  }
  if (report.style) rows.push(["Target style", report.style, ""]);
  if (typeof seconds === "number") rows.push(["Time", `${seconds.toFixed(1)} s`, "From loading the image to saving the result."]);
  for (const note of [...(report.notes || []), ...(report.warnings || [])]) rows.push(["Note", note, ""]);
  $("figures").replaceChildren(...rows.map(([k, v, explain]) =>
    el("tr", {}, el("th", { text: k }), el("td", { text: v }), el("td", { class: "explain", text: explain }))));
}

// --------------------------------------------------------------------------------------------- start

// Before the first answer: knock until the app is there (setOnline then starts the page).
function waitForApp() {
  api("GET", "/api/info").catch(() => setTimeout(waitForApp, RETRY_MS));
}

async function init() {
  try {
    state.info = await api("GET", "/api/info");
  } catch (e) {
    if (e.offline) { state.initWaiting = true; setTimeout(waitForApp, RETRY_MS); }
    else $("start-error").textContent = `The app cannot start: ${e.message}`;
    return;
  }
  renderChoices();
  setUpDrop($("drop"), $("file-input"), state.images, renderImages, $("folder-input"), $("images"));
  setUpDrop($("target-drop"), $("target-input"), state.targets, renderTargets, null, $("targets"));
  for (const input of document.querySelectorAll("input[name=mode]")) input.addEventListener("change", showMode);
  $("concept").addEventListener("input", updateStart);
  $("as-concept").addEventListener("input", updateStart);
  $("preview-image").addEventListener("change", (e) => { state.previewId = e.target.value; renderStylePreviews(); });
  $("start").addEventListener("click", start);
  $("cancel-job").addEventListener("click", cancelJob);
  $("rerun-job").addEventListener("click", rerunJob);
  $("delete-job").addEventListener("click", deleteJob);
  for (const name of ["intensity", "speed", "style", "family"]) {
    document.addEventListener("change", (e) => { if (e.target.name === name) updateStart(); });
  }
  $("viewer-close").addEventListener("click", closeViewer);
  for (const input of document.querySelectorAll("input[name=view]")) input.addEventListener("change", applyView);
  $("zoom").addEventListener("change", applyZoom);
  $("slider").addEventListener("input", moveSlider);
  $("layers").addEventListener("pointerdown", dragSlider);
  $("layers").addEventListener("pointermove", dragSlider);
  for (const id of ["before-img", "after-img", "side-before", "side-after", "heat-img"]) {
    $(id).addEventListener("load", fitSlider);
    $(id).draggable = false;
  }
  window.addEventListener("resize", fitSlider);
  syncScroll($("side-before-pane"), $("side-after-pane"));
  syncScroll($("side-after-pane"), $("side-before-pane"));
  window.addEventListener("hashchange", route);
  await restoreChoices();
  renderImages();
  renderTargets();
  showMode();
  route();
  loadJobs();
}

document.addEventListener("DOMContentLoaded", init);
