// Koala app: each chosen or dropped photo is posted on its own to /api/colorize; the answer
// is the colorized PNG at full resolution (shown beside the gray version, with a
// before/after slider and a download link) or {"error": "..."} shown in the photo's card.
// With a hint model, a click on the colorized photo places a colour point (koala.hints: the
// CLI's JSON, in the photo's pixel coordinates); every change re-sends the photo with its
// points (X-Hints) and shows the new result; /api/palette suggests the likely colours there.
"use strict";

const maxBytes = Number(document.body.dataset.maxBytes);
const results = document.getElementById("results");
const template = document.getElementById("card");

function fail(card, message) {
  const status = card.querySelector(".status");
  status.textContent = message;
  status.classList.add("error");
  card.dataset.state = "error";
}

const defaultVividness = document.body.dataset.vividness;  // "" when the model has none
const takesHints = document.body.dataset.hints === "1";

async function colorize(file) {
  const card = template.content.firstElementChild.cloneNode(true);
  card.querySelector(".name").textContent = file.name;
  results.prepend(card);
  if (file.size > maxBytes) {
    fail(card, `${file.name}: larger than the upload limit of ${Math.round(maxBytes / 1e6)} MB`);
    return;
  }
  const original = URL.createObjectURL(file);
  card.querySelector(".gray").src = original;
  card.querySelector(".before").src = original;
  card.hints = [];  // [{x, y, rgb, size}] in the photo's pixels
  card.history = [];  // earlier versions of card.hints, for undo
  card.sent = 0;  // requests sent: only the newest answer is shown
  const vividness = () => (defaultVividness === "" ? "" : card.querySelector(".vividness").value);
  card.resend = () => send(card, file, vividness());
  if (defaultVividness !== "") {
    const slider = card.querySelector(".vividness");
    slider.value = defaultVividness;
    card.querySelector(".vividness-value").textContent = slider.value;
    slider.addEventListener("change", card.resend);
    slider.addEventListener("input", () => {
      card.querySelector(".vividness-value").textContent = slider.value;
    });
  }
  if (takesHints) setUpHints(card, file);
  await card.resend();
}

function headersFor(card, file) {
  const headers = {"Content-Type": "application/octet-stream",
                   "X-Filename": encodeURIComponent(file.name)};
  if (card.hints.length) headers["X-Hints"] = encodeURIComponent(JSON.stringify(card.hints));
  return headers;
}

// Posts `file` (at `vividness` in percent, "" for the model's default, with the card's
// colour points) and fills the card.
async function send(card, file, vividness) {
  delete card.dataset.state;  // set again ("done" or "error") when the answer is shown
  const query = vividness === "" ? "" : `?vividness=${Number(vividness) / 100}`;
  const number = ++card.sent;
  let response;
  try {
    response = await fetch("/api/colorize" + query, {
      method: "POST", body: file, headers: headersFor(card, file)});
  } catch (error) {
    fail(card, `${file.name}: the Koala server did not answer (${error})`);
    return;
  }
  if (number !== card.sent) return;  // a newer change is on its way
  if (!response.ok) {
    let message = `${file.name}: the server answered ${response.status}`;
    try { message = (await response.json()).error || message; } catch (error) { /* not JSON */ }
    fail(card, message);
    return;
  }
  const blob = await response.blob();
  if (number !== card.sent) return;
  const colorized = URL.createObjectURL(blob);
  card.querySelector(".colorized").src = colorized;
  card.querySelector(".after").src = colorized;
  const link = card.querySelector(".download");
  link.href = colorized;
  link.download = file.name.replace(/\.[^.]*$/, "") + "-colorized.png";
  link.hidden = false;
  card.querySelector(".compare").hidden = false;
  card.querySelector(".vividness-control").hidden = defaultVividness === "";
  card.querySelector(".status").textContent =
    `${response.headers.get("X-Image-Width")} x ${response.headers.get("X-Image-Height")} pixels`;
  card.querySelector(".status").classList.remove("error");
  card.querySelector(".hint-tools").hidden = !takesHints;
  card.dataset.state = "done";
}

// ---------------------------------------------------------------- colour points (hints)

function setUpHints(card, file) {
  const image = card.querySelector(".colorized");
  const layer = card.querySelector(".hint-layer");
  const colour = card.querySelector(".hint-color");
  const size = card.querySelector(".hint-size");
  const palette = card.querySelector(".palette");
  card.selected = -1;

  const toPixels = (event) => {
    const box = image.getBoundingClientRect();
    const x = (event.clientX - box.left) / box.width * image.naturalWidth - 0.5;
    const y = (event.clientY - box.top) / box.height * image.naturalHeight - 0.5;
    return {x: Math.round(Math.min(Math.max(x, 0), image.naturalWidth - 1) * 2) / 2,
            y: Math.round(Math.min(Math.max(y, 0), image.naturalHeight - 1) * 2) / 2};
  };
  const change = (hints) => {  // every edit: remember the old points, draw, re-colorize
    card.history.push(card.hints);
    card.hints = hints;
    draw();
    card.resend();
  };
  const draw = () => {
    layer.replaceChildren(...card.hints.map((hint, index) => {
      const point = document.createElement("div");
      point.className = "hint-point" + (index === card.selected ? " selected" : "");
      point.style.left = `${(hint.x + 0.5) / image.naturalWidth * 100}%`;
      point.style.top = `${(hint.y + 0.5) / image.naturalHeight * 100}%`;
      point.style.background = hint.rgb;
      point.dataset.index = index;
      point.title = `${hint.rgb} at (${hint.x}, ${hint.y})`;
      return point;
    }));
    card.querySelector(".hint-count").textContent =
      `${card.hints.length} point${card.hints.length === 1 ? "" : "s"}`;
    card.querySelector(".hint-undo").disabled = card.history.length === 0;
    card.querySelector(".hint-remove").disabled = card.selected < 0;
    const saved = new Blob([JSON.stringify({[file.name]: card.hints}, null, 1)],
                           {type: "application/json"});
    const link = card.querySelector(".hint-save");
    if (link.href) URL.revokeObjectURL(link.href);
    link.href = URL.createObjectURL(saved);
    link.download = file.name.replace(/\.[^.]*$/, "") + "-hints.json";
  };
  const suggest = async (hint) => {  // the model's likely colours at the point
    palette.replaceChildren();
    const others = card.hints.filter((other) => other !== hint);
    const headers = headersFor({hints: others}, file);
    const response = await fetch(`/api/palette?x=${hint.x}&y=${hint.y}`,
                                 {method: "POST", body: file, headers});
    if (!response.ok) return;
    for (const suggestion of (await response.json()).colors) {
      const swatch = document.createElement("button");
      swatch.type = "button";
      swatch.className = "swatch";
      swatch.style.background = suggestion.rgb;
      swatch.title = `${suggestion.rgb} (${Math.round(suggestion.probability * 100)}%)`;
      swatch.dataset.rgb = suggestion.rgb;
      palette.append(swatch);
    }
  };
  const recolour = (rgb) => {
    colour.value = rgb;
    if (card.selected < 0) return;
    change(card.hints.map((hint, i) => (i === card.selected ? {...hint, rgb} : hint)));
  };

  image.addEventListener("click", (event) => {
    const hint = {...toPixels(event), rgb: colour.value, size: Number(size.value) || 1};
    card.selected = card.hints.length;
    change([...card.hints, hint]);
    suggest(hint);
  });
  colour.addEventListener("change", () => recolour(colour.value));
  palette.addEventListener("click", (event) => {
    if (event.target.dataset.rgb) recolour(event.target.dataset.rgb);
  });
  card.querySelector(".hint-remove").addEventListener("click", () => {
    const index = card.selected;
    card.selected = -1;
    change(card.hints.filter((_, i) => i !== index));
  });
  card.querySelector(".hint-undo").addEventListener("click", () => {
    card.hints = card.history.pop() || [];
    card.selected = -1;
    draw();
    card.resend();
  });
  card.querySelector(".hint-load").addEventListener("change", async (event) => {
    const chosen = event.target.files[0];
    event.target.value = "";
    if (!chosen) return;
    let loaded;
    try {
      loaded = JSON.parse(await chosen.text());
    } catch (error) {
      fail(card, `${chosen.name}: not JSON (${error.message})`);
      return;
    }
    const hints = Array.isArray(loaded) ? loaded : loaded[file.name];
    if (!Array.isArray(hints)) {
      fail(card, `${chosen.name}: no points for ${file.name} (a list, or {"${file.name}": [...]})`);
      return;
    }
    card.selected = -1;
    change(hints);
  });
  // drag a point to move it; double-click removes it
  layer.addEventListener("pointerdown", (event) => {
    const index = Number(event.target.dataset.index);
    if (Number.isNaN(index)) return;
    event.preventDefault();
    card.selected = index;
    colour.value = card.hints[index].rgb || colour.value;
    draw();
    let moved = null;
    const move = (moveEvent) => {
      moved = toPixels(moveEvent);
      const point = layer.children[index];
      point.style.left = `${(moved.x + 0.5) / image.naturalWidth * 100}%`;
      point.style.top = `${(moved.y + 0.5) / image.naturalHeight * 100}%`;
    };
    const up = () => {
      window.removeEventListener("pointermove", move);
      window.removeEventListener("pointerup", up);
      if (moved) change(card.hints.map((hint, i) => (i === index ? {...hint, ...moved} : hint)));
    };
    window.addEventListener("pointermove", move);
    window.addEventListener("pointerup", up);
  });
  layer.addEventListener("dblclick", (event) => {
    const index = Number(event.target.dataset.index);
    if (Number.isNaN(index)) return;
    card.selected = -1;
    change(card.hints.filter((_, i) => i !== index));
  });
  draw();
}

function slide(event) {
  if (!event.target.classList.contains("slider")) return;
  const before = event.target.parentElement.querySelector(".before");
  before.style.clipPath = `inset(0 ${100 - event.target.value}% 0 0)`;
}

const input = document.getElementById("files");
input.addEventListener("change", () => { [...input.files].forEach(colorize); input.value = ""; });
const drop = document.getElementById("drop");
drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  [...event.dataTransfer.files].forEach(colorize);
});
results.addEventListener("input", slide);
