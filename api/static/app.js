// The pdfq web page: pick a template, edit its data, submit, follow the job live (SSE), preview and download.
// The API key lives in sessionStorage only and travels in the Authorization header, never in a URL.

const KEY_STORAGE = "pdfq.apiKey";
const RECENT_LIMIT = 10;
const MAX_PREVIEW_PAGES = 12;
const PREVIEW_WIDTH_PX = 600;
const ZOOM_WIDTH_PX = 1400;
const OWN_HTML = "__html__";
const DEFAULT_TEMPLATE = "invoice.html";
const OWN_HTML_SAMPLE = {
  html: "<h1>Hello {{ name }}</h1>\n<p>Rendered by pdfq on {{ date }}.</p>",
  data: { name: "Ada", date: "today" },
};

const $ = (id) => document.getElementById(id);
const state = { key: null, templates: [], blobUrls: [], events: null, jobId: null, lastTemplate: null };

class Problem extends Error {
  constructor(body, status) {
    super(body.detail || body.title || `HTTP ${status}`);
    this.title = body.title || `HTTP ${status}`;
    this.detail = body.detail || "";
    this.errors = Array.isArray(body.errors) ? body.errors : [];
    this.status = status;
  }
}

async function api(path, { method = "GET", body } = {}) {
  const headers = { Authorization: `Bearer ${state.key}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new Problem({ title: "Network error", detail: "the service did not answer; is it running?" }, 0);
  }
  if (!response.ok) {
    let problem = {};
    try { problem = await response.json(); } catch { /* not JSON: keep the status line */ }
    throw new Problem(problem, response.status);
  }
  return response;
}

// --- messages -------------------------------------------------------------------------------------------

function showProblem(problem) {
  $("alert-title").textContent = problem.title;
  $("alert-detail").textContent = problem.detail;
  const list = $("alert-fields");
  list.replaceChildren(...problem.errors.map((e) => {
    const item = document.createElement("li");
    const field = document.createElement("code");
    field.textContent = e.field;
    item.append(field, `: ${e.message}`);
    return item;
  }));
  $("alert").hidden = false;
}

function clearProblem() {
  $("alert").hidden = true;
}

function report(error) {
  if (error instanceof Problem) showProblem(error);
  else showProblem(new Problem({ title: "Unexpected error", detail: String(error) }, 0));
}

// --- API key --------------------------------------------------------------------------------------------

function forgetTenantView() {
  // Everything shown belongs to the key that fetched it: a new key starts from a clean page.
  if (state.events) state.events.close();
  state.events = null;
  state.jobId = null;
  state.blobUrls.forEach((url) => URL.revokeObjectURL(url));
  state.blobUrls = [];
  state.templates = [];
  $("gallery").querySelectorAll(".tile").forEach((tile) => tile.remove());
  $("gallery-empty").hidden = false;
  clearJobPanel();
  $("recent").replaceChildren();
  $("recent-empty").hidden = false;
}

async function useKey(key) {
  forgetTenantView();
  clearProblem();
  state.key = key;
  if (!key) {
    sessionStorage.removeItem(KEY_STORAGE);
    $("key-status").textContent = "No key: enter one to start.";
    return;
  }
  try {
    await loadTemplates();
    sessionStorage.setItem(KEY_STORAGE, key);
    $("key-status").textContent = "Key accepted · kept in this tab only (session storage).";
    await loadRecent();
  } catch (error) {
    state.key = null;
    sessionStorage.removeItem(KEY_STORAGE);
    $("key-status").textContent = "That key was not accepted.";
    report(error);
  }
}

// --- templates ------------------------------------------------------------------------------------------

function tile(value, title, description) {
  const label = document.createElement("label");
  label.className = "tile";
  const radio = document.createElement("input");
  radio.type = "radio";
  radio.name = "template";
  radio.value = value;
  radio.setAttribute("aria-label", title);
  const thumb = document.createElement("div");
  thumb.className = "thumb";
  const text = document.createElement("div");
  text.className = "tile-text";
  const name = document.createElement("span");
  name.className = "tile-name";
  name.textContent = title;
  const about = document.createElement("span");
  about.className = "tile-about";
  about.textContent = description;
  about.id = `about-${value.replace(/[^A-Za-z0-9_-]/g, "-")}`;
  radio.setAttribute("aria-describedby", about.id);
  const head = document.createElement("span");
  head.className = "tile-head";
  head.append(radio, name);
  text.append(head, about);
  label.append(thumb, text);
  return { label, radio, thumb };
}

async function loadPreview(name, thumb) {
  try {
    const response = await api(`/v1/templates/${encodeURIComponent(name)}/preview.png`);
    const url = URL.createObjectURL(await response.blob());
    state.blobUrls.push(url);
    const img = document.createElement("img");
    img.src = url;
    img.alt = `Page 1 of ${name} with its sample data`;
    thumb.replaceChildren(img);
  } catch (error) {
    thumb.textContent = error.status === 503 ? "preview after a worker starts" : "no preview";
  }
}

async function loadTemplates() {
  const response = await api("/v1/templates");
  const { templates } = await response.json();
  state.templates = templates;
  const gallery = $("gallery");
  $("gallery-empty").hidden = true;
  for (const template of templates) {
    const { label, radio, thumb } = tile(template.name, template.name.replace(/\.html$/, ""), template.description);
    radio.addEventListener("change", () => selectTemplate(template.name));
    gallery.append(label);
    loadPreview(template.name, thumb);
  }
  const own = tile(OWN_HTML, "Your own HTML", "Paste a Jinja2 template; it is rendered in a sandbox.");
  own.thumb.classList.add("thumb-own");
  own.thumb.textContent = "</>";
  own.radio.addEventListener("change", () => selectTemplate(OWN_HTML));
  gallery.append(own.label);
  // The invoice is what most people come to try; any other catalogue starts on its first template.
  const first = gallery.querySelector(`input[name=template][value="${DEFAULT_TEMPLATE}"]`)
    || gallery.querySelector("input[name=template]");
  if (first) {
    first.checked = true;
    selectTemplate(first.value);
  }
}

function selectTemplate(name) {
  state.lastTemplate = name;
  const own = name === OWN_HTML;
  $("html-field").hidden = !own;
  if (own && !$("html").value) $("html").value = OWN_HTML_SAMPLE.html;
  const sample = own ? OWN_HTML_SAMPLE.data : state.templates.find((t) => t.name === name)?.sample_data ?? {};
  $("data").value = JSON.stringify(sample, null, 2);
  checkJson($("data"), $("data-status"), { required: true });
}

// --- JSON fields ----------------------------------------------------------------------------------------

// Where JSON.parse gave up: V8 names a position, or quotes the text around an unexpected token.
function errorOffset(text, message) {
  const at = /position (\d+)/.exec(message);
  if (at) return Number(at[1]);
  if (/end of JSON input/.test(message)) return text.length;
  const token = /Unexpected token '(.+?)', (?:\.\.\.)?"(.*?)(?:\.\.\.)?" is not valid JSON/s.exec(message);
  const start = token ? text.indexOf(token[2]) : -1;
  return start >= 0 ? start + token[2].lastIndexOf(token[1]) : null;
}

function jsonError(text, message) {
  const reason = message.replace(/^JSON\.parse: /, "").split(/, (?:\.\.\.)?"/)[0].replace(/ (?:in JSON )?at position.*$/, "");
  const offset = errorOffset(text, message);
  if (offset === null) return `Invalid JSON: ${reason}`;
  const before = text.slice(0, offset);
  const line = before.split("\n").length;
  const column = before.length - before.lastIndexOf("\n");
  return `Invalid JSON at line ${line}, column ${column}: ${reason}`;
}

// Parses a textarea as a JSON object; flags it (aria-invalid + message) and returns undefined when invalid.
function checkJson(textarea, status, { required }) {
  const text = textarea.value.trim();
  let problem = null;
  let value;
  if (!text) {
    if (required) problem = "Enter a JSON object, e.g. {}";
  } else {
    try {
      value = JSON.parse(textarea.value);
      if (value === null || typeof value !== "object" || Array.isArray(value)) problem = "Must be a JSON object { … }";
    } catch (error) {
      problem = jsonError(textarea.value, error.message);
    }
  }
  textarea.setAttribute("aria-invalid", problem ? "true" : "false");
  status.textContent = problem ?? (text ? "Valid JSON" : "");
  status.classList.toggle("bad", Boolean(problem));
  status.classList.toggle("good", !problem && Boolean(text));
  return problem ? undefined : (value ?? null);
}

function chosenOptions(extra) {
  const options = {};
  const page = {};
  if ($("page-size").value) page.size = $("page-size").value;
  if ($("orientation").value) page.orientation = $("orientation").value;
  if (Object.keys(page).length) options.page = page;
  if ($("quality").value) options.quality = $("quality").value;
  if ($("doc-title").value.trim()) options.document = { title: $("doc-title").value.trim() };
  if ($("watermark").value.trim()) options.watermark = { text: $("watermark").value.trim() };
  for (const [key, value] of Object.entries(extra ?? {})) {
    const both = options[key] && typeof options[key] === "object" && value && typeof value === "object";
    options[key] = both && !Array.isArray(value) ? { ...options[key], ...value } : value;
  }
  return options;
}

// --- submit and follow ----------------------------------------------------------------------------------

function clearJobPanel() {
  $("job-live").hidden = true;
  $("job-empty").hidden = false;
  for (const id of ["job-id", "job-position", "job-wait", "job-step", "job-attempts", "job-error", "job-summary"]) {
    $(id).textContent = "";
  }
  $("download").href = "#";
  $("download").setAttribute("download", "");
  $("previews").replaceChildren();
  delete $("previews").dataset.job;
}

async function submit(event) {
  event.preventDefault();
  clearProblem();
  if (!state.key) {
    showProblem(new Problem({ title: "No API key", detail: "enter your API key at the top of the page first" }, 0));
    $("api-key").focus();
    return;
  }
  const data = checkJson($("data"), $("data-status"), { required: true });
  if (data === undefined) {
    showProblem(new Problem({ title: "Invalid JSON data", detail: $("data-status").textContent }, 0));
    $("data").focus();
    return;
  }
  const extra = checkJson($("options-json"), $("options-status"), { required: false });
  if (extra === undefined) {
    $("options-json").closest("details").open = true;
    showProblem(new Problem({ title: "Invalid options JSON", detail: $("options-status").textContent }, 0));
    $("options-json").focus();
    return;
  }
  const body = { data, priority: $("priority").value };
  if (state.lastTemplate === OWN_HTML) body.html = $("html").value;
  else body.template = state.lastTemplate;
  const options = chosenOptions(extra);
  if (Object.keys(options).length) body.options = options;
  const button = $("submit");
  button.disabled = true;
  $("submit-hint").textContent = "Submitting…";
  try {
    const job = await (await api("/v1/jobs", { method: "POST", body })).json();
    $("submit-hint").textContent = "";
    follow(job);
    loadRecent();
    $("job-panel").scrollIntoView({ behavior: "smooth", block: "nearest" });
  } catch (error) {
    $("submit-hint").textContent = "";
    report(error);
  } finally {
    button.disabled = false;
  }
}

function follow(job) {
  if (state.events) state.events.close();
  state.jobId = job.id;
  $("previews").replaceChildren();
  showJob(job);
  if (["completed", "failed", "canceled"].includes(job.status)) return;
  const events = new EventSource(job.links.events);
  state.events = events;
  const onJob = (message) => {
    if (state.events === events) showJob(JSON.parse(message.data));
  };
  events.addEventListener("status", onJob);
  events.addEventListener("done", (message) => {
    onJob(message);
    events.close();
    if (state.events === events) state.events = null;
    loadRecent();
  });
}

function seconds(value) {
  if (value === null || value === undefined) return "—";
  return value < 1 ? "under a second" : `about ${Math.round(value)} s`;
}

function showJob(job) {
  if (job.id !== state.jobId) return;
  $("job-empty").hidden = true;
  $("job-live").hidden = false;
  const badge = $("job-status");
  badge.textContent = job.status;
  badge.dataset.status = job.status;
  $("job-id").textContent = job.id;
  $("job-position").textContent = job.queue_position ?? "—";
  $("job-wait").textContent = seconds(job.estimated_wait_s);
  $("job-step").textContent = job.progress?.step ?? "—";
  $("job-attempts").textContent = `${job.attempts} of ${job.max_retries + 1}`;
  const percent = job.progress?.percent ?? 0;
  $("job-progress").value = percent;
  $("job-percent").textContent = `${percent}%`;
  const error = $("job-error");
  error.hidden = !job.error;
  error.textContent = job.error ? `${job.error.code}: ${job.error.message}` : "";
  const done = job.status === "completed" && job.result;
  $("job-result").hidden = !done;
  if (done) showResult(job);
}

function showResult(job) {
  const { pages, bytes } = job.result;
  $("job-summary").textContent = `${pages} page${pages === 1 ? "" : "s"} · ${(bytes / 1024).toFixed(1)} KiB`;
  const download = $("download");
  download.href = job.links.pdf;
  download.setAttribute("download", job.filename || `${job.id}.pdf`);
  const previews = $("previews");
  if (previews.dataset.job === job.id) return;
  previews.dataset.job = job.id;
  const shown = Math.min(pages, MAX_PREVIEW_PAGES);
  previews.classList.toggle("single", pages === 1);
  previews.replaceChildren(...Array.from({ length: shown }, (_, i) => {
    const figure = document.createElement("figure");
    const img = document.createElement("img");
    img.src = `${job.links.preview}&page=${i + 1}&width=${PREVIEW_WIDTH_PX}`;
    img.alt = `Page ${i + 1} of ${pages}`;
    img.loading = i < 2 ? "eager" : "lazy";
    img.decoding = "async";
    const zoom = document.createElement("a");
    zoom.href = `${job.links.preview}&page=${i + 1}&width=${ZOOM_WIDTH_PX}`;
    zoom.target = "_blank";
    zoom.rel = "noopener";
    zoom.setAttribute("aria-label", `Page ${i + 1} of ${pages}, larger, in a new tab`);
    zoom.append(img);
    const caption = document.createElement("figcaption");
    caption.textContent = `Page ${i + 1}`;
    figure.append(zoom, caption);
    return figure;
  }));
  if (pages > shown) {
    const more = document.createElement("p");
    more.className = "hint";
    more.textContent = `${pages - shown} more page(s) in the PDF.`;
    previews.append(more);
  }
}

// --- recent jobs ----------------------------------------------------------------------------------------

function when(iso) {
  if (!iso) return "";
  return new Date(iso).toLocaleString(undefined, { dateStyle: "short", timeStyle: "medium" });
}

async function loadRecent() {
  if (!state.key) return;
  try {
    const { jobs } = await (await api(`/v1/jobs?limit=${RECENT_LIMIT}`)).json();
    $("recent-empty").hidden = jobs.length > 0;
    $("recent").replaceChildren(...jobs.map((job) => {
      const item = document.createElement("li");
      const open = document.createElement("button");
      open.type = "button";
      open.className = "recent-open";
      open.setAttribute("aria-label", `Show job ${job.id} (${job.status})`);
      const badge = document.createElement("span");
      badge.className = "badge";
      badge.dataset.status = job.status;
      badge.textContent = job.status;
      const name = document.createElement("span");
      name.className = "recent-name";
      name.textContent = job.template;
      const time = document.createElement("time");
      time.dateTime = job.created_at;
      time.textContent = when(job.created_at);
      open.append(badge, name, time);
      open.addEventListener("click", () => follow(job));
      item.append(open);
      return item;
    }));
  } catch (error) {
    report(error);
  }
}

// --- wiring ---------------------------------------------------------------------------------------------

function start() {
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    useKey($("api-key").value.trim());
  });
  $("forget-key").addEventListener("click", () => {
    $("api-key").value = "";
    useKey("");
  });
  $("alert-close").addEventListener("click", clearProblem);
  $("data").addEventListener("input", () => checkJson($("data"), $("data-status"), { required: true }));
  $("options-json").addEventListener("input", () => checkJson($("options-json"), $("options-status"), { required: false }));
  $("job-form").addEventListener("submit", submit);
  $("refresh-jobs").addEventListener("click", loadRecent);
  const saved = sessionStorage.getItem(KEY_STORAGE);
  if (saved) {
    $("api-key").value = saved;
    useKey(saved);
  }
}

start();
