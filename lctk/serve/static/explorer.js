// The lctk explorer page: asks the server's JSON API and shows what comes back (images, sounds, tables).
// It knows no modality: every output arrives as a list of media (a MIME type and bytes) chosen by the writer plugin.
"use strict";

const $ = (id) => document.getElementById(id);
let RUN = null;
let selectedIndex = null;

async function api(path, body) {
  const options = body === undefined ? {} : {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)};
  const response = await fetch(path, options);
  const type = response.headers.get("Content-Type") || "";
  if (!response.ok) {
    const message = type.includes("json") ? (await response.json()).error : response.statusText;
    throw new Error(message);
  }
  return type.includes("json") ? response.json() : response.blob();
}

function status(id, text, isError) {
  const el = $(id);
  el.textContent = text;
  el.classList.toggle("error", Boolean(isError));
}

function mediaElement(media) {
  const url = `data:${media.mime};base64,${media.data}`;
  if (media.mime.startsWith("image/")) {
    const img = document.createElement("img");
    img.src = url;
    img.alt = media.name;
    return img;
  }
  if (media.mime.startsWith("audio/") && media.inline) {
    const audio = document.createElement("audio");
    audio.controls = true;
    audio.preload = "auto";
    audio.src = url;
    return audio;
  }
  const link = document.createElement("a");
  link.href = url;
  link.download = media.name;
  link.textContent = media.name;
  return link;
}

function itemElement(mediaList) {
  const box = document.createElement("div");
  box.className = "item";
  mediaList.forEach((m) => box.appendChild(mediaElement(m)));
  return box;
}

// -- attribute and rule pickers -------------------------------------------------------------------------------
function targetPickers(containerId, names, kind) {
  const box = $(containerId);
  box.innerHTML = "";
  if (!names.length) {
    box.textContent = kind === "attribute" ? "no attribute constraints" : "no rule constraints";
    return;
  }
  names.forEach((name) => {
    const row = document.createElement("label");
    row.className = "target";
    if (kind === "attribute") {
      const select = document.createElement("select");
      select.dataset.name = name;
      [["", "any"], ["1", "yes"], ["0", "no"]].forEach(([value, text]) => {
        const option = document.createElement("option");
        option.value = value;
        option.textContent = text;
        select.appendChild(option);
      });
      row.appendChild(select);
    } else {
      const check = document.createElement("input");
      check.type = "checkbox";
      check.dataset.name = name;
      row.appendChild(check);
    }
    row.appendChild(document.createTextNode(name));
    box.appendChild(row);
  });
}

// A slider per continuous attribute: ticked, it asks for the slider's value (NAME=VALUE).
function sliders(containerId, ranges) {
  const box = $(containerId);
  box.innerHTML = "";
  ranges.forEach((r) => {
    const row = document.createElement("label");
    row.className = "target";
    const use = document.createElement("input");
    use.type = "checkbox";
    use.dataset.continuous = r.name;
    const slider = document.createElement("input");
    slider.type = "range";
    slider.min = r.low;
    slider.max = r.high;
    slider.step = (r.high - r.low) / 100 || 1;
    slider.value = (r.low + r.high) / 2;
    slider.dataset.name = r.name;
    const shown = document.createElement("output");
    shown.textContent = Number(slider.value).toFixed(2);
    slider.addEventListener("input", () => { shown.textContent = Number(slider.value).toFixed(2); use.checked = true; });
    row.append(use, document.createTextNode(r.name), slider, shown);
    box.appendChild(row);
  });
}

function chosen(containerId) {
  const attrs = [];
  $(containerId).querySelectorAll("input[data-continuous]:checked").forEach((c) => {
    const slider = c.parentElement.querySelector("input[type=range]");
    attrs.push(`${c.dataset.continuous}=${Number(slider.value)}`);
  });
  $(containerId).querySelectorAll("select").forEach((s) => {
    if (s.value === "1") attrs.push(s.dataset.name);
    if (s.value === "0") attrs.push(`${s.dataset.name}=0`);
  });
  return attrs;
}

function chosenRules(containerId) {
  return Array.from($(containerId).querySelectorAll("input[type=checkbox]:checked")).map((c) => c.dataset.name);
}

// -- sample ---------------------------------------------------------------------------------------------------
function sampleRequest(mode) {
  return {mode, attrs: mode === "constrained" ? chosen("sample-attrs") : [],
          rules: mode === "constrained" ? chosenRules("sample-rules") : [],
          method: $("sample-method").value, n: Number($("sample-n").value), seed: Number($("sample-seed").value)};
}

async function sample(mode) {
  status("sample-status", "sampling...");
  const started = performance.now();
  try {
    const result = await api("/api/sample", sampleRequest(mode));
    const grid = $("sample-grid");
    grid.innerHTML = "";
    result.items.forEach((item) => grid.appendChild(itemElement(item)));
    grid.dataset.label = result.label;
    const seconds = ((performance.now() - started) / 1000).toFixed(2);
    status("sample-status", `${result.items.length} samples (${result.label}) in ${seconds} s`);
  } catch (e) {
    status("sample-status", `error: ${e.message}`, true);
  }
}

async function download() {
  status("sample-status", "preparing the zip...");
  try {
    const blob = await api("/api/download", sampleRequest("constrained"));
    const link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = "lctk-samples.zip";
    link.click();
    status("sample-status", `zip of ${blob.size} bytes`);
  } catch (e) {
    status("sample-status", `error: ${e.message}`, true);
  }
}

// -- edit -----------------------------------------------------------------------------------------------------
function strength() {
  return Math.pow(10, Number($("edit-strength").value));
}

async function strip() {
  status("edit-status", "drawing examples...");
  try {
    const result = await api("/api/examples", {random: true, count: 8, seed: Math.floor(Math.random() * 1e6)});
    const box = $("edit-strip-items");
    box.innerHTML = "";
    result.items.forEach((item) => {
      const el = itemElement(item.media.filter((m) => m.mime.startsWith("image/")));
      el.dataset.testIndex = item.test_index;
      el.title = `test example ${item.test_index}`;
      el.addEventListener("click", () => {
        box.querySelectorAll(".item").forEach((x) => x.classList.remove("selected"));
        el.classList.add("selected");
        $("edit-index").value = item.test_index;
        $("edit-file").value = "";
      });
      box.appendChild(el);
    });
    status("edit-status", "pick an example, choose targets, then Edit");
  } catch (e) {
    status("edit-status", `error: ${e.message}`, true);
  }
}

async function edit() {
  status("edit-status", "editing...");
  const attrs = chosen("edit-attrs");
  const rules = chosenRules("edit-rules");
  const settings = {strength: strength(), steps: Number($("edit-steps").value)};
  const started = performance.now();
  try {
    let result;
    const file = $("edit-file").files[0];
    if (file) {
      const dot = file.name.lastIndexOf(".");
      const query = new URLSearchParams({suffix: dot >= 0 ? file.name.slice(dot) : "",
                                         strength: settings.strength, steps: settings.steps});
      attrs.forEach((a) => query.append("attrs", a));
      rules.forEach((r) => query.append("rules", r));
      const response = await fetch(`/api/edit-upload?${query}`, {method: "POST", body: file});
      result = await response.json();
      if (!response.ok) throw new Error(result.error);
    } else {
      result = await api("/api/edit", {test_index: Number($("edit-index").value), attrs, rules, ...settings});
    }
    const box = $("edit-result");
    box.innerHTML = "";
    [["before", result.before], ["after", result.after]].forEach(([title, media]) => {
      const column = document.createElement("div");
      column.className = `edit-${title}`;
      const heading = document.createElement("h3");
      heading.textContent = title;
      column.appendChild(heading);
      column.appendChild(itemElement(media));
      box.appendChild(column);
    });
    const seconds = ((performance.now() - started) / 1000).toFixed(2);
    const shift = result.shift === null ? "" : `, sigma-weighted latent shift ${result.shift.toFixed(3)}`;
    status("edit-status", `edited in ${seconds} s${shift}`);
  } catch (e) {
    status("edit-status", `error: ${e.message}`, true);
  }
}

// -- inspect --------------------------------------------------------------------------------------------------
function flatten(value, prefix, rows) {
  if (value !== null && typeof value === "object" && !Array.isArray(value)) {
    Object.entries(value).forEach(([k, v]) => flatten(v, prefix ? `${prefix} / ${k}` : k, rows));
  } else {
    rows.push([prefix, Array.isArray(value) ? value.join(", ") : String(value)]);
  }
  return rows;
}

function table(title, value) {
  const section = document.createElement("div");
  const heading = document.createElement("h2");
  heading.textContent = title;
  section.appendChild(heading);
  const t = document.createElement("table");
  t.innerHTML = "<tr><th>what</th><th>value</th></tr>";
  flatten(value, "", []).forEach(([k, v]) => {
    const row = t.insertRow();
    row.insertCell().textContent = k;
    row.insertCell().textContent = v;
  });
  section.appendChild(t);
  return section;
}

function inspect(run) {
  const box = $("inspect");
  box.innerHTML = "";
  box.appendChild(table("Backbone", {name: run.backbone, ...run.backbone_config}));
  box.appendChild(table("Dataset", run.dataset));
  run.constraints.forEach((c) => box.appendChild(table(`Constraint ${c.name}`, {targets: c.targets, ...c.metrics})));
  if (run.evaluation) box.appendChild(table("Last evaluation (lctk evaluate)", run.evaluation));
  else {
    const note = document.createElement("p");
    note.textContent = "No evaluation yet: run `lctk evaluate` on this run.";
    box.appendChild(note);
  }
}

// -- start ----------------------------------------------------------------------------------------------------
function showTab(name) {
  document.querySelectorAll(".tab").forEach((t) => t.classList.toggle("active", t.dataset.tab === name));
  document.querySelectorAll(".panel").forEach((p) => p.classList.toggle("hidden", p.id !== `panel-${name}`));
}

async function start() {
  document.querySelectorAll(".tab").forEach((t) => t.addEventListener("click", () => showTab(t.dataset.tab)));
  try {
    RUN = await api("/api/run");
  } catch (e) {
    $("run-title").textContent = `error: ${e.message}`;
    return;
  }
  $("run-title").textContent = `${RUN.run}: ${RUN.backbone} backbone on ${RUN.dataset.name} (${RUN.modality})`;
  ["sample", "edit"].forEach((panel) => {
    targetPickers(`${panel}-attrs`, RUN.attributes, "attribute");
    if (RUN.continuous.length) {
      if (!RUN.attributes.length) $(`${panel}-attrs`).textContent = "";
      const box = document.createElement("div");
      box.id = `${panel}-attrs-continuous`;
      $(`${panel}-attrs`).appendChild(box);
      sliders(box.id, RUN.continuous);
    }
    targetPickers(`${panel}-rules`, RUN.rules, "rule");
  });
  RUN.methods.forEach((m) => {
    const option = document.createElement("option");
    option.value = m;
    option.textContent = m;
    $("sample-method").appendChild(option);
  });
  $("sample-n").max = RUN.limits.n;
  $("edit-file").accept = RUN.upload_suffixes.join(",");
  $("edit-file").disabled = RUN.upload_suffixes.length === 0;
  if (RUN.test_examples !== null) $("edit-index").max = RUN.test_examples - 1;
  $("edit-strength").addEventListener("input", () => { $("edit-strength-value").textContent = strength().toFixed(2); });
  $("sample-go").addEventListener("click", () => sample("constrained"));
  $("sample-realism").addEventListener("click", () => sample("realism"));
  $("sample-prior").addEventListener("click", () => sample("prior"));
  $("sample-download").addEventListener("click", download);
  $("edit-strip").addEventListener("click", strip);
  $("edit-go").addEventListener("click", edit);
  inspect(RUN);
  document.body.dataset.ready = "1";
}

start();
