// The motif-lite page: a form for POST /v1/videos and the queue from GET /v1/videos, refreshed while jobs run.
// Videos are fetched with the API key (a <video src> could not send it) and played from blob URLs.
"use strict";

const $ = (id) => document.getElementById(id);
const blobs = new Map(); // video id -> object URL of the finished video
const cards = new Map(); // video id -> its <li>
let refreshTimer = null;

function apiKey() { return localStorage.getItem("motif-lite-api-key") || ""; }

async function api(path, options = {}) {
  const headers = new Headers(options.headers || {});
  if (apiKey()) headers.set("Authorization", "Bearer " + apiKey());
  const response = await fetch(path, { ...options, headers });
  if (!response.ok) {
    let message = response.status + " " + response.statusText;
    try { message = (await response.json()).error.message; } catch (_) { /* not JSON */ }
    throw new Error(message);
  }
  return response;
}

function formBody() {
  const body = new FormData();
  body.set("prompt", $("prompt").value);
  const fields = { negative_prompt: $("negative").value, num_frames: $("frames").value, steps: $("steps").value,
                   seed: $("seed").value };
  for (const [name, value] of Object.entries(fields)) if (value.trim() !== "") body.set(name, value.trim());
  const size = $("size").value === "custom" ? $("width").value + "x" + $("height").value : $("size").value;
  if (size) body.set("size", size);
  if ($("image").files.length) body.set("input_reference", $("image").files[0]);
  return body;
}

async function submit(event) {
  event.preventDefault();
  $("form-error").textContent = "";
  $("submit").disabled = true;
  try {
    await api("v1/videos", { method: "POST", body: formBody() });
    await refresh();
  } catch (error) {
    $("form-error").textContent = error.message;
  } finally {
    $("submit").disabled = false;
  }
}

function describe(video) {
  const s = video.settings || {};
  const parts = [video.size, (s.num_frames || "?") + " frames", (s.steps || "?") + " steps", "seed " + s.seed];
  if (s.image_to_video) parts.push("image-to-video");
  return parts.join(" · ");
}

function newCard(video) {
  const li = document.createElement("li");
  li.className = "job";
  li.dataset.id = video.id;
  li.innerHTML = '<div class="prompt"></div><div class="meta"></div><div class="state meta"></div>' +
                 '<progress max="100"></progress><div class="media"></div><div class="actions"></div>';
  li.querySelector(".prompt").textContent = video.prompt;
  li.querySelector(".meta").textContent = describe(video);
  return li;
}

function updateCard(li, video) {
  if (li.dataset.status === video.status && video.status !== "in_progress") return;
  li.dataset.status = video.status;
  const running = video.status === "queued" || video.status === "in_progress";
  const state = li.querySelector(".state");
  state.textContent = video.status === "failed" ? "failed: " + video.error.message
                    : video.status === "in_progress" ? "generating · " + video.progress + "%" : video.status;
  state.classList.toggle("error", video.status === "failed");
  const bar = li.querySelector("progress");
  bar.hidden = !running;
  bar.value = video.progress;
  const actions = li.querySelector(".actions");
  if (!actions.dataset.status || actions.dataset.status !== (running ? "running" : video.status)) {
    actions.dataset.status = running ? "running" : video.status;
    actions.replaceChildren(button(running ? "Cancel" : "Delete", () => remove(video.id)));
  }
  if (video.status === "in_progress") showPreview(li, video);
  if (video.status === "completed") showVideo(li, video);
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
  } catch (error) {
    li.querySelector(".state").textContent = "cannot load the video: " + error.message;
  }
}

async function remove(id) {
  try {
    await api("v1/videos/" + id, { method: "DELETE" });
  } catch (error) {
    alert(error.message);
  }
  await refresh();
}

async function refresh() {
  clearTimeout(refreshTimer);
  let busy = false;
  try {
    const page = await (await api("v1/videos?limit=100&order=desc")).json();
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
    $("form-error").textContent = "";
  } catch (error) {
    $("form-error").textContent = error.message;
  }
  refreshTimer = setTimeout(refresh, busy ? 1000 : 5000);
}

async function showModel() {
  try {
    const models = await (await api("v1/models")).json();
    $("model").textContent = models.data.map((m) => m.id).join(", ");
  } catch (_) { /* shown by refresh */ }
}

document.addEventListener("DOMContentLoaded", () => {
  $("api-key").value = apiKey();
  $("api-key").addEventListener("change", () => {
    localStorage.setItem("motif-lite-api-key", $("api-key").value.trim());
    showModel();
    refresh();
  });
  $("size").addEventListener("change", () => {
    for (const label of document.querySelectorAll(".custom")) label.hidden = $("size").value !== "custom";
  });
  $("create").addEventListener("submit", submit);
  showModel();
  refresh();
});
