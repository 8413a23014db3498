// The motif-lite page: a form for POST /v1/videos and the queue from GET /v1/videos, refreshed while jobs run.
// Videos are fetched with the API key (a <video src> could not send it) and played from blob URLs.
"use strict";

const $ = (id) => document.getElementById(id);
const blobs = new Map(); // video id -> object URL of the finished video
const cards = new Map(); // video id -> its <li>
let refreshTimer = null;
let queueUnread = false; // the last refresh failed: the server may come back restarted, with other settings
let serverInfo = null; // GET v1/info: the defaults of this server's jobs and its upload limits (null until read)
const MAX_JOB_LORAS = 8; // the API's limit on a job's LoRAs (motif_lite/server/schema.py)
// The official values of the settings the advanced section sets (motif_lite/request/, sampling/guidance.py; the
// crf: H.264's default, motif_lite/io/video.py): a job's card names those it ran with otherwise. The flow shift's
// depends on the kind of video.
const OFFICIAL = {"guidance_method": "apg", "guidance_scale": 8, "apg_eta": 1, "apg_norm_threshold": 12,
                  "apg_momentum": 0.1, "sampling_method": "euler", "fps": 24, "crf": 18};
const OFFICIAL_SHIFT = {"text_to_video": 15, "image_to_video": 8};
const SETTING_LABELS = { guidance_method: "guidance", guidance_scale: "guidance scale", apg_eta: "APG eta",
                         apg_norm_threshold: "APG norm threshold", apg_momentum: "APG momentum",
                         sampling_method: "sampler", flow_shift: "flow shift", fps: "fps", crf: "crf" };

// What a request that got no answer at all means: the server stopped (or restarts), or the network is down.
const UNREACHABLE = "cannot reach the motif-lite server: it has stopped or is restarting (or the network is " +
  "down). Start it again with motif-lite serve; this page tries again every few seconds, and queued jobs run " +
  "once it is back.";

// What the answers of a reverse proxy in front of the server (nginx, Caddy) mean here, by status: its body over the
// proxy's own limit (nginx's is 1 MB by default, the server's 20 MiB), or no server behind it (stopped, restarting).
const PROXY_ANSWERS = {
  413: "the request is larger than the proxy in front of the motif-lite server lets through (its answer was 413, " +
       "not the server's): raise the proxy's limit, e.g. nginx's client_max_body_size, to the server's " +
       "(docs/server.md, \"Behind a reverse proxy\")",
  502: UNREACHABLE, 503: UNREACHABLE, 504: UNREACHABLE,
};

// The fields a reload of the page keeps, by id (a browser cannot fill a file input again; Extend and Remix belong
// to one video, and the LoRA list is the server's folder).
const FORM_KEY = "motif-lite-form";
const KEPT_FIELDS = ["prompt", "negative", "size", "width", "height", "frames", "steps", "seed", "guidance-method",
                     "guidance-scale", "apg-eta", "apg-norm-threshold", "apg-momentum", "sampling-method",
                     "flow-shift", "fps", "crf"];

function keyMessage() {
  const where = "the key motif-lite serve was started with (--api-key or $MOTIF_LITE_API_KEY)";
  return apiKey() ? "the API key typed at the top of the page is not the server's: type " + where
                  : "this server wants an API key: type " + where + " in the API key field at the top of the page";
}

function apiKey() { return localStorage.getItem("motif-lite-api-key") || ""; }

async function api(path, options = {}) {
  const headers = new Headers(options.headers || {});
  if (apiKey()) headers.set("Authorization", "Bearer " + apiKey());
  let response;
  try {
    response = await fetch(path, { ...options, headers });
  } catch (_) { // the browser's own words ("Failed to fetch") say nothing of what happened or what to do
    throw new Error(UNREACHABLE);
  }
  if (!response.ok) {
    let message = response.status + " " + response.statusText;
    let param = null;
    try {
      ({ message, param } = (await response.json()).error);
    } catch (_) { // not the server's JSON: a proxy's own answer (an HTML page; over HTTP/2 not even a status text)
      message = PROXY_ANSWERS[response.status] || message;
    }
    if (response.status === 401) message = keyMessage(); // the API's words ("send Authorization: ...") are a client's
    throw Object.assign(new Error(message), { param }); // param: the API field to fix, where one is at fault
  }
  return response;
}

function formBody() {
  const body = new FormData();
  body.set("prompt", $("prompt").value);
  const fields = { negative_prompt: $("negative").value, num_frames: $("frames").value, steps: $("steps").value,
                   seed: $("seed").value };
  for (const input of $("advanced").querySelectorAll("[name]")) fields[input.name] = input.value;
  for (const [name, value] of Object.entries(fields)) if (value.trim() !== "") body.set(name, value.trim());
  const size = $("size").value === "custom" ? $("width").value + "x" + $("height").value : $("size").value;
  if (size && !chosenClip()) body.set("size", size); // a video to go on from has its own size: the job takes it
  const loras = chosenLoras();
  if (loras.length) body.set("loras", JSON.stringify(loras)); // a form's loras is the JSON list as text
  if ($("image").files.length) body.set("input_reference", $("image").files[0]);
  if (!$("extending").hidden) body.set("extend", $("extending").dataset.id);
  if (chosenClip()) body.set("extend", chosenClip()); // an uploaded video to go on from, as the API takes it
  return body;
}

function chosenClip() { return $("clip").files[0] || null; }

function chooseClip() {
  // A video to go on from: its last frame is the first frame (so no image), and its size is the video's.
  if (chosenClip()) $("image").value = "";
  fixSize();
  showUploadProblem();
}

function chooseImage() {
  if ($("image").files.length) $("clip").value = "";
  fixSize();
  showUploadProblem();
}

function fixSize() {
  // The size is the video's when going on from one (Extend, or a chosen video file): not the user's to choose.
  const clip = chosenClip() !== null;
  for (const input of [$("size"), $("width"), $("height")]) input.disabled = clip || !$("extending").hidden;
  showVideoSize(clip);
  $("clip-note").hidden = !clip;
}

function showVideoSize(clip) {
  // A chosen video file's size is not known here (Extend's is, and shows in Width and Height): the greyed-out
  // dropdown says the video's size is used, not the size chosen before, which comes back once the file goes.
  const size = $("size");
  if (clip && size.value !== "video") {
    size.dataset.chosen = size.value;
    size.value = "video";
  } else if (!clip && size.value === "video") {
    setField(size, size.dataset.chosen ?? null);
  }
  showCustomSize();
}

function sizeWords(bytes) {
  // As the server's flags count them (--max-upload-mb 20 is 20 MiB), in KB below 1 MB: "0 MB" says nothing.
  if (bytes < 2 ** 20) return Math.ceil(bytes / 2 ** 10) + " KB";
  return (bytes / 2 ** 20).toFixed(1).replace(/\.0$/, "") + " MB";
}

function uploadProblem() {
  // A file the server would refuse, said at once and named: one over its limit was uploaded first (minutes for a
  // large video on a slow link) to be refused by a message on the request's size in bytes.
  const limits = serverInfo ? serverInfo.limits : null;
  const clip = chosenClip();
  if (clip && clip.type.startsWith("image/") && !["image/gif", "image/webp"].includes(clip.type)) {
    return { param: "extend", message: clip.name + " is an image, not a video: choose it as the first frame " +
             "(image-to-video) instead; this field takes a video to go on from (MP4, MOV, MKV, WebM, GIF)" };
  }
  if (clip && limits && clip.size > limits.max_video_upload_bytes) {
    return { param: "extend", message: clip.name + " is " + sizeWords(clip.size) + ": this server takes videos " +
             "to go on from up to " + sizeWords(limits.max_video_upload_bytes) + " (its --max-video-upload-mb); " +
             "choose a shorter or smaller clip, or ask the server's operator for a larger limit" };
  }
  const image = $("image").files[0];
  if (image && limits && image.size > limits.max_upload_bytes) {
    return { param: "input_reference", message: image.name + " is " + sizeWords(image.size) + ": this server " +
             "takes first-frame images up to " + sizeWords(limits.max_upload_bytes) + " (its --max-upload-mb); " +
             "choose a smaller image (a PNG or JPEG at the video's size is plenty)" };
  }
  return null;
}

function showUploadProblem() {
  const problem = uploadProblem();
  showFormError(problem ? problem.message : "", problem ? problem.param : null);
  return problem;
}

function typingProblem() {
  // A number field holding what is no number ("1e", "--") reads as empty in a browser, and an empty field is not
  // sent: the job would get the server's default without a word. (The form checks nothing else itself: the server
  // says what is wrong with a value in the words of motif-lite run.)
  for (const field of $("create").querySelectorAll("input[type=number]")) {
    if (!field.validity.badInput || field.disabled || !shown(field)) continue;
    const name = field.name || field.id || field.getAttribute("aria-label"); // a LoRA's: "strength of FILE"
    return { param: field.name || (field.classList.contains("strength") ? "loras" : "size"),
             message: name + " is not a number: type a number, or empty the field for the server's default" };
  }
  return null;
}

function shown(element) { return element.getClientRects().length > 0; }

function showFormError(message, param) {
  // Next to the field it is about (the first the API's `param` names that is on the page), which is focused: on a
  // phone's narrow page the message is then on screen, and a screen reader reads it with the field. By the Generate
  // button when no field is at fault (a full queue, a server that cannot be reached).
  const error = $("form-error");
  const fields = markInvalid(message ? param : null).filter(shown);
  if (fields.length) {
    const field = fields[0];
    (field.closest(".row") ?? field.closest("label") ?? field).after(error);
    for (const each of fields) each.setAttribute("aria-describedby", "form-error");
    if (message !== error.textContent) field.focus();
  } else {
    $("form-actions").append(error);
  }
  error.textContent = message;
}

function saveForm() {
  // A field Extend fixed (disabled) keeps the value saved before: the size of one video is not the user's choice.
  const saved = savedForm();
  for (const id of KEPT_FIELDS) if (!$(id).disabled) saved[id] = $(id).value;
  localStorage.setItem(FORM_KEY, JSON.stringify(saved));
}

function savedForm() {
  try {
    const saved = JSON.parse(localStorage.getItem(FORM_KEY) || "{}");
    return saved && typeof saved === "object" ? saved : {};
  } catch (_) {
    return {}; // written by hand or damaged: the fields start empty
  }
}

function restoreForm() {
  const saved = savedForm();
  for (const id of KEPT_FIELDS) if (typeof saved[id] === "string") setField($(id), saved[id]);
  showCustomSize();
  // A setting kept in the collapsed section would change the next job unseen: show it.
  $("advanced").open = [...$("advanced").querySelectorAll("[name]")].some((field) => field.value !== "");
}

function resetForm() {
  localStorage.removeItem(FORM_KEY);
  stopExtending();
  stopRemixing();
  stopRetrying();
  $("create").reset(); // (no control of the form may be named or have the id `reset`: it would hide this method)
  fixSize();
  showCustomSize();
  showFormError("", null);
  $("advanced").open = false;
}

function submitOnCtrlEnter(event) {
  // Ctrl+Enter (Cmd+Enter on a Mac) in any field queues the job, as in ComfyUI and AUTOMATIC1111's web UI.
  if (event.key !== "Enter" || !(event.ctrlKey || event.metaKey) || $("submit").disabled) return;
  event.preventDefault();
  $("create").requestSubmit();
}

function extendFrom(video) {
  // The form for the next part of a finished video: its last frame is the first frame, so no image, and the size
  // is the video's (the API refuses another). Its frame rate is the API's default, so fps is left to the server.
  stopRemixing();
  stopRetrying();
  const fieldset = $("extending");
  fieldset.dataset.id = video.id;
  const length = video.seconds ? ", " + video.seconds + " s" : ""; // unknown to a failed extension's Try again
  $("extending-text").textContent = "Extending " + video.id + " (" + video.size + length + "): its last frame is" +
    " the first frame of the new part. Write what happens next.";
  fieldset.hidden = false;
  const [width, height] = video.size.split("x");
  $("size").value = "custom";
  $("width").value = width;
  $("height").value = height;
  $("image").value = "";
  $("clip").value = "";
  for (const input of [$("image"), $("clip")]) input.disabled = true;
  fixSize();
  showCustomSize();
  $("prompt").value = "";
  $("prompt").focus();
  $("create").scrollIntoView();
}

function remixFrom(video) {
  // A remix is the video's settings and seed with a new prompt (POST /v1/videos/{id}/remix): the form sends the
  // prompt and only the fields filled in, each replacing the video's value; they are filled with the video's, or
  // the values kept from earlier jobs would replace its seed, frames, ... A first frame is not kept by the server.
  stopExtending();
  stopRetrying();
  showSettingsOf(video);
  const fieldset = $("remixing");
  fieldset.dataset.id = video.id;
  const s = video.settings || {};
  const image = s.image_to_video && !s.extend && !s.extend_file;
  const upload = s.extend_file ? " It went on from an uploaded video (" + s.extend_file.name + "), which the server" +
    " no longer has: choose that file again in \"Go on from a video file\"." : "";
  $("remixing-text").textContent = "Remixing " + video.id + ": its settings and seed, in the fields below, with" +
    " the prompt you write; a field you change replaces its value." + (image ? " It was made from a first frame: choose that image again." : "") +
    upload;
  fieldset.hidden = false;
  $("prompt").value = video.prompt || "";
  $("prompt").focus();
  $("create").scrollIntoView();
}

function tryAgain(video) {
  // A failed job again: its prompt and settings, its seed included, in the form, which Generate queues as a new job
  // (after any change its error asks for: fewer frames when the GPU ran out of memory, say). An extension of one of
  // this server's videos goes on from that video again; a first frame or an uploaded video is not kept by the
  // server once the job ends: the note asks for that file again.
  stopRemixing();
  stopExtending();
  const s = video.settings || {};
  if (s.extend) extendFrom({ id: s.extend, size: video.size }); // before the settings: it empties the prompt
  showSettingsOf(video);
  useLoras(s.loras || []);
  $("prompt").value = video.prompt || "";
  const image = s.image_to_video && !s.extend && !s.extend_file;
  const again = image ? " It was made from a first frame: choose that image again." :
    s.extend_file ? " It went on from an uploaded video (" + s.extend_file.name + "): choose that file again in " +
                    "\"Go on from a video file\"." : "";
  $("retrying").textContent = "Trying " + video.id + " again: its prompt and settings are in the form, its seed " +
    "included; change what its error asks for, then Generate." + again;
  $("retrying").hidden = false;
  $("prompt").focus();
  $("create").scrollIntoView();
}

function stopRetrying() {
  // Extend, Remix, Reset and the job queued end a Try again: its note no longer says what the form holds.
  $("retrying").hidden = true;
}

function useLoras(loras) {
  // The LoRAs a job ran with, ticked with their strengths in the picker (the others unticked).
  const wanted = new Map(loras.map((lora) => [lora.name, lora.strength]));
  for (const row of $("lora-list").children) {
    row.querySelector(".use").checked = wanted.has(row.dataset.name);
    if (wanted.has(row.dataset.name)) row.querySelector(".strength").value = String(wanted.get(row.dataset.name));
  }
  limitLoras();
}

function showSettingsOf(video) {
  const s = video.settings || {};
  for (const field of $("create").querySelectorAll("#negative, #frames, #steps, #seed, #advanced [name]")) {
    const value = s[field.name];
    setField(field, value === null || value === undefined ? "" : String(value)); // null: left to the server
  }
  const [width, height] = video.size.split("x");
  setField($("size"), "custom");
  setField($("width"), width);
  setField($("height"), height);
  fixSize(); // a video file chosen before: its size still goes
}

function stopRemixing() {
  $("remixing").hidden = true;
  delete $("remixing").dataset.id;
}

function stopExtending() {
  const extending = !$("extending").hidden;
  $("extending").hidden = true;
  delete $("extending").dataset.id;
  for (const input of [$("image"), $("clip")]) input.disabled = false;
  fixSize();
  if (extending) restoreSize();
}

function restoreSize() {
  // Extend set the size to its video's: the next new video gets the size chosen before (saved while it was not
  // fixed), or the official one.
  const saved = savedForm();
  for (const id of ["size", "width", "height"]) setField($(id), typeof saved[id] === "string" ? saved[id] : null);
  showCustomSize();
}

function setField(field, value) {
  // null, or a choice this version of the page no longer offers: the field's value in the page as served.
  const initial = field.tagName === "SELECT" ? field.options[0].value : field.defaultValue;
  field.value = value ?? initial;
  if (field.value !== (value ?? initial)) field.value = initial;
}

function showCustomSize() {
  for (const label of document.querySelectorAll(".custom")) label.hidden = $("size").value !== "custom";
}

function chosenLoras() {
  const chosen = [];
  for (const row of $("lora-list").children) {
    if (!row.querySelector(".use").checked) continue;
    const strength = row.querySelector(".strength").value.trim();
    const name = row.dataset.name;
    chosen.push(strength === "" ? { name } : { name, strength: Number(strength) }); // empty: the API's 1
  }
  return chosen;
}

function loraRow(name, previous) {
  const row = document.createElement("div");
  row.className = "lora";
  row.dataset.name = name;
  row.innerHTML = '<label><input class="use" type="checkbox"> <span></span></label>' +
                  '<label>strength <input class="strength" type="number" min="-10" max="10" step="any" value="1" ' +
                  'title="-10 to 10; 1 as trained, 0 no effect"></label>';
  row.querySelector("span").textContent = name;
  // Each row's strength field by its file: a screen reader read every one as "strength".
  row.querySelector(".strength").setAttribute("aria-label", "strength of " + name);
  if (previous) {
    row.querySelector(".use").checked = previous.querySelector(".use").checked;
    row.querySelector(".strength").value = previous.querySelector(".strength").value;
  }
  row.querySelector(".use").addEventListener("change", limitLoras);
  return row;
}

function limitLoras() {
  // The API takes at most MAX_JOB_LORAS per job: once that many are chosen, the others cannot be ticked.
  const boxes = [...$("lora-list").querySelectorAll(".use")];
  const full = boxes.filter((box) => box.checked).length >= MAX_JOB_LORAS;
  for (const box of boxes) box.disabled = full && !box.checked;
}

async function loadLoras() {
  // Read from the server's folder at each call: files added since the page loaded can be chosen after a refresh.
  let list;
  try {
    list = await (await api("v1/loras")).json();
  } catch (_) {
    return; // e.g. no API key yet: the queue shows that error
  }
  $("loras").hidden = !list.per_job;
  $("lora-limit").textContent = "(up to " + MAX_JOB_LORAS + " at once)";
  const previous = new Map([...$("lora-list").children].map((row) => [row.dataset.name, row]));
  $("lora-list").replaceChildren(...list.data.map((lora) => loraRow(lora.id, previous.get(lora.id))));
  $("lora-none").hidden = list.data.length > 0;
  limitLoras();
}

function markInvalid(param) {
  // The fields the API field `param` names, outlined (their section opened); none for null.
  for (const field of $("create").querySelectorAll("[aria-invalid]")) {
    field.removeAttribute("aria-invalid");
    field.removeAttribute("aria-describedby");
  }
  if (!param) return [];
  const custom = param === "size" && $("size").value === "custom";
  const named = $("create").querySelectorAll(`[name="${CSS.escape(param)}"]`);
  const fields = custom ? [$("width"), $("height")] : [...named];
  for (const field of fields) field.setAttribute("aria-invalid", "true");
  if (fields.some((field) => $("advanced").contains(field))) $("advanced").open = true;
  return fields;
}

async function submit(event) {
  event.preventDefault();
  showFormError("", null);
  const typed = typingProblem();
  if (typed) return showFormError(typed.message, typed.param);
  if (showUploadProblem()) return;
  $("submit").disabled = true;
  try {
    const remixed = $("remixing").hidden ? null : $("remixing").dataset.id;
    if (remixed) await api("v1/videos/" + encodeURIComponent(remixed) + "/remix", { method: "POST", body: formBody() });
    else await api("v1/videos", { method: "POST", body: formBody() });
    stopExtending(); // the next Generate makes a new video unless another Extend or Remix is clicked
    stopRemixing();
    stopRetrying(); // the note was for the job just queued
    $("clip").value = ""; // likewise for a video file: the next job goes on from it only if chosen again
    fixSize();
    await refresh();
  } catch (error) {
    showFormError(error.message, error.param);
  } finally {
    $("submit").disabled = false;
  }
}

function describe(video) {
  const s = video.settings || {};
  let frames = (s.num_frames || "?") + " frames";
  if (s.extend || s.extend_file) {
    // `frames`, the whole file's, exact: `seconds`, to the hundredth, counted back wrong past 100 fps.
    frames = s.num_frames + " new frames, " + video.frames + " in all";
  }
  const parts = [video.size, frames, (s.steps || "?") + " steps", "seed " + s.seed];
  if (s.image_to_video && !s.extend && !s.extend_file) parts.push("image-to-video");
  return parts.join(" · ");
}

function unofficialSettings(settings) {
  // The settings a job ran with that are not the official ones: given in its request, or its checkpoint's own.
  const kind = settings.image_to_video ? "image_to_video" : "text_to_video";
  const official = { ...OFFICIAL, flow_shift: OFFICIAL_SHIFT[kind] };
  const parts = [];
  if (settings.guidance_method === null) { // guidance off: its scale, null or the one given, says the same
    parts.push("no guidance");
    delete official.guidance_scale;
  }
  for (const [name, value] of Object.entries(official)) {
    const given = settings[name];
    if (given !== null && given !== undefined && given !== value) parts.push(SETTING_LABELS[name] + " " + given);
  }
  return parts.join(" · ");
}

function loraText(settings) {
  const loras = settings.loras || [];
  return loras.length ? "LoRAs: " + loras.map((lora) => lora.name + " ×" + lora.strength).join(", ") : "";
}

function newCard(video) {
  const li = document.createElement("li");
  li.className = "job";
  li.dataset.id = video.id;
  li.innerHTML = '<div class="prompt"></div><div class="meta"></div><div class="extends meta"></div>' +
                 '<div class="settings meta"></div><ul class="notes meta"></ul>' +
                 '<div class="loras meta"></div><div class="state meta"></div>' +
                 '<progress max="100"></progress><div class="media"></div><div class="actions"></div>';
  li.querySelector(".prompt").textContent = video.prompt;
  li.querySelector(".meta").textContent = describe(video);
  const upload = (video.settings || {}).extend_file;
  const extended = (video.settings || {}).extend || (upload ? upload.name + " (uploaded)" : null);
  const origin = [extended ? "extends " + extended : "",
                  video.remixed_from_video_id ? "remix of " + video.remixed_from_video_id : ""];
  for (const [selector, text] of [[".extends", origin.filter(Boolean).join(" · ")],
                                  [".settings", unofficialSettings(video.settings || {})],
                                  [".loras", loraText(video.settings || {})]]) {
    li.querySelector(selector).textContent = text;
    li.querySelector(selector).hidden = text === "";
  }
  showNotes(li.querySelector(".notes"), video.notes || []);
  return li;
}

function showNotes(list, notes) {
  // What the server changed or warns about (frames rounded to 4k+1, an image stretched to the size, ...): the notes
  // `motif-lite run` prints, which the page would otherwise never show.
  list.replaceChildren(...notes.map((note) => Object.assign(document.createElement("li"), { textContent: note })));
  list.hidden = notes.length === 0;
}

function stateText(video) {
  // A queued job's `jobs_ahead`: the jobs the server runs before it (a cancelled one still finishing its step too).
  if (video.status === "failed") return "failed: " + video.error.message;
  if (video.status === "in_progress") return "generating · " + video.progress + "%";
  if (video.status === "queued") {
    return video.jobs_ahead ? "queued · " + video.jobs_ahead + " ahead of it" : "queued · next";
  }
  return video.status;
}

function updateCard(li, video) {
  const running = video.status === "queued" || video.status === "in_progress";
  const retry = li.dataset.retryAt !== undefined && Date.now() >= Number(li.dataset.retryAt); // showVideo's
  if (li.dataset.status === video.status && !running && !retry) return;
  delete li.dataset.retryAt;
  li.dataset.status = video.status;
  const state = li.querySelector(".state");
  state.textContent = stateText(video);
  state.classList.toggle("error", video.status === "failed");
  const bar = li.querySelector("progress");
  bar.hidden = !running;
  bar.value = video.progress;
  const actions = li.querySelector(".actions");
  if (!actions.dataset.status || actions.dataset.status !== (running ? "running" : video.status)) {
    actions.dataset.status = running ? "running" : video.status;
    actions.replaceChildren(button(running ? "Cancel" : "Delete", () => remove(video)));
    if (video.status === "completed") {
      actions.append(button("Extend", () => extendFrom(video)), button("Remix", () => remixFrom(video)));
    }
    if (video.status === "failed") actions.append(button("Try again", () => tryAgain(video)));
  }
  if (video.status === "in_progress") showPreview(li, video);
  else if (video.status !== "completed") dropPreview(li); // failed, or queued again after a crash: no result
  if (video.status === "completed") showVideo(li, video);
}

function dropPreview(li) {
  // A preview beside "failed" or "queued" would pass for the result; the next run of the job draws its own.
  const preview = li.querySelector("img.preview");
  if (preview) {
    URL.revokeObjectURL(preview.src);
    preview.remove();
  }
  delete li.dataset.previewAt;
}

async function showPreview(li, video) {
  // The server rewrites the preview about every quarter of the steps; looking again when the progress moved is enough.
  if (li.dataset.previewAt === String(video.progress)) return;
  li.dataset.previewAt = String(video.progress);
  let blob;
  try {
    blob = await (await api("v1/videos/" + video.id + "/content?variant=preview")).blob();
  } catch (_) {
    return; // none yet
  }
  if (li.dataset.status !== "in_progress") return; // it failed or finished while the preview came
  let image = li.querySelector("img.preview");
  if (!image) {
    image = document.createElement("img");
    image.className = "preview";
    image.alt = "preview of the video being generated";
    li.querySelector(".media").append(image);
  }
  if (image.src) URL.revokeObjectURL(image.src);
  image.src = URL.createObjectURL(blob);
}

function button(label, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = "secondary";
  b.textContent = label;
  b.addEventListener("click", onClick);
  return b;
}

async function showVideo(li, video) {
  if (li.querySelector("video")) return;
  const player = document.createElement("video");
  player.className = "result";
  Object.assign(player, { controls: true, autoplay: true, loop: true, muted: true, playsInline: true });
  const preview = li.querySelector("img.preview");
  if (preview) URL.revokeObjectURL(preview.src);
  li.querySelector(".media").replaceChildren(player);
  try {
    if (!blobs.has(video.id)) {
      const response = await api("v1/videos/" + video.id + "/content");
      blobs.set(video.id, URL.createObjectURL(await response.blob()));
    }
    player.src = blobs.get(video.id);
    const link = document.createElement("a");
    link.href = blobs.get(video.id);
    link.download = video.id + ".mp4";
    link.textContent = "Download";
    li.querySelector(".actions").append(link);
    delete li.dataset.loadFailures;
  } catch (error) {
    li.querySelector(".state").textContent = "cannot load the video: " + error.message;
    player.remove();
    // A later refresh tries again (the server may have been restarting), after 2 s, then 4 s, ... up to a
    // minute: a video that keeps failing is not downloaded again at every refresh, and its error stays said.
    const failures = Number(li.dataset.loadFailures || 0) + 1;
    li.dataset.loadFailures = String(failures);
    li.dataset.retryAt = String(Date.now() + Math.min(60000, 1000 * 2 ** failures));
  }
}

async function remove(video) {
  // A finished video goes from the server with its file for good (a web UI's history, ComfyUI's say, keeps the
  // files): ask first. Cancelling a job or removing a failed one loses no video.
  const gone = "Delete this video from the server for good? Its file goes too; Download keeps a copy.\n\n";
  if (video.status === "completed" && !confirm(gone + video.prompt)) return;
  try {
    await api("v1/videos/" + video.id, { method: "DELETE" });
  } catch (error) {
    alert(error.message);
  }
  await refresh();
}

async function stoppingJob() {
  // The id of a job cancelled while it ran that the worker is still stopping: it stops after its current step,
  // which on a CPU takes minutes, and the queue waits until then (/health's `stopping`; needs no key).
  try {
    return (await (await fetch("health", { cache: "no-store" })).json()).stopping || null;
  } catch (_) {
    return null; // the server cannot be reached: the queue's error says so
  }
}

function showStopping(id) {
  $("stopping").textContent = id ? "Cancelled " + id + ": the server stops it after the step it is on (on a CPU " +
    "a step can take minutes); the next job starts then." : "";
  $("stopping").hidden = !id;
}

async function refresh() {
  clearTimeout(refreshTimer);
  let busy = false;
  try {
    const [page, stopping] = await Promise.all([api("v1/videos?limit=100&order=desc").then((r) => r.json()),
                                                stoppingJob()]);
    showStopping(stopping);
    busy = stopping !== null;
    const seen = new Set();
    page.data.forEach((video, index) => {
      seen.add(video.id);
      let li = cards.get(video.id);
      if (!li) { li = newCard(video); cards.set(video.id, li); }
      const list = $("queue");
      if (list.children[index] !== li) list.insertBefore(li, list.children[index] || null);
      updateCard(li, video);
      busy = busy || video.status === "queued" || video.status === "in_progress";
    });
    for (const [id, li] of cards) {
      if (seen.has(id)) continue;
      li.remove();
      cards.delete(id);
      if (blobs.has(id)) { URL.revokeObjectURL(blobs.get(id)); blobs.delete(id); }
    }
    $("empty").hidden = page.data.length > 0;
    $("queue-error").textContent = "";
    if (queueUnread) readSettings(); // back after a restart: its flags (--lora-dir, --crf, limits) may be new
    queueUnread = false;
  } catch (error) {
    // Apart from the form's error: a refresh that works must not wipe the message of a job the API refused.
    $("queue-error").textContent = error.message;
    queueUnread = true;
  }
  refreshTimer = setTimeout(refresh, busy ? 1000 : 5000);
}

async function loadInfo() {
  // This server's defaults (its checkpoint's guider and scheduler configs, its --crf, --max-video) in the fields
  // of the form, where the page as served names the official ones; and its upload limits, checked before sending.
  try {
    serverInfo = await (await api("v1/info")).json();
  } catch (_) {
    return; // e.g. no API key yet: the queue shows that error
  }
  const text = serverInfo.defaults.text_to_video;
  if (!text) return; // a checkpoint that refuses a job without settings: the fields keep the official values
  const image = serverInfo.defaults.image_to_video;
  for (const field of $("create").querySelectorAll("#frames, #steps, #advanced [name]")) {
    const value = text[field.name];
    if (value === undefined) continue;
    const official = field.name === "flow_shift" ? OFFICIAL_SHIFT.text_to_video : OFFICIAL[field.name];
    let words = defaultWords(field.name, value);
    if (field.name === "flow_shift" && image && image.flow_shift !== value) {
      words += " (" + image.flow_shift + " from a first frame or a video)";
    }
    if (field.name === "fps") words += " (going on from a video: its own)";
    const range = (field.dataset.range ??= field.title.split("empty:")[0].replace(/[;\s]+$/, ""));
    const differs = official !== undefined && value !== official;
    field.title = (range ? range + "; " : "") + "empty: this server's default, " + words +
      (differs ? " (the official value is " + defaultWords(field.name, official) + ")" : "");
    if (field.tagName === "SELECT") field.options[0].textContent = "default (" + defaultWords(field.name, value) + ")";
    else field.placeholder = defaultWords(field.name, value);
  }
  const size = $("size").options[0];
  size.textContent = text.size + (text.size === "1280x736" ? " (official)" : " (this server's default)");
}

function defaultWords(name, value) {
  // null: guidance is off (a guidance method), or not APG (an APG parameter), by default.
  if (value === null) return name === "guidance_method" ? "off" : "not used";
  return name === "guidance_method" ? value.toUpperCase() : String(value); // as the field's choices name it
}

async function showModel() {
  try {
    const models = await (await api("v1/models")).json();
    $("model").textContent = models.data.map((m) => m.id).join(", ");
  } catch (_) { /* shown by refresh */ }
}

function readServer() {
  // Everything the page shows of the server, read again whenever the API key changes.
  readSettings();
  refresh();
}

function readSettings() {
  // What the page shows of the server beside the queue: read when the page opens, when the API key changes and
  // when the server can be reached again (restarted, perhaps with another model or other flags).
  showModel();
  loadInfo();
  loadLoras();
}

document.addEventListener("DOMContentLoaded", () => {
  $("api-key").value = apiKey();
  $("api-key").addEventListener("change", () => {
    localStorage.setItem("motif-lite-api-key", $("api-key").value.trim());
    readServer();
  });
  restoreForm();
  $("create").addEventListener("input", saveForm);
  $("create").addEventListener("change", saveForm);
  $("create").addEventListener("keydown", submitOnCtrlEnter);
  $("reset-form").addEventListener("click", resetForm);
  $("size").addEventListener("change", showCustomSize);
  $("extend-stop").addEventListener("click", stopExtending);
  $("remix-stop").addEventListener("click", stopRemixing);
  $("create").addEventListener("submit", submit);
  $("lora-refresh").addEventListener("click", loadLoras);
  $("clip").addEventListener("change", chooseClip);
  $("image").addEventListener("change", chooseImage);
  readServer();
});
