// Koala app: each chosen or dropped photo is posted on its own to /api/colorize; the answer
// is the colorized PNG at full resolution (shown beside the gray version, with a
// before/after slider and a download link) or {"error": "..."} shown in the photo's card.
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
  if (defaultVividness !== "") {
    const slider = card.querySelector(".vividness");
    slider.value = defaultVividness;
    card.querySelector(".vividness-value").textContent = slider.value;
    slider.addEventListener("change", () => send(card, file, slider.value));
    slider.addEventListener("input", () => {
      card.querySelector(".vividness-value").textContent = slider.value;
    });
  }
  await send(card, file, defaultVividness);
}

// Posts `file` (at `vividness` in percent, "" for the model's default) and fills the card.
async function send(card, file, vividness) {
  delete card.dataset.state;  // set again ("done" or "error") when the answer is shown
  const query = vividness === "" ? "" : `?vividness=${Number(vividness) / 100}`;
  let response;
  try {
    response = await fetch("/api/colorize" + query, {
      method: "POST", body: file,
      headers: {"Content-Type": "application/octet-stream",
                "X-Filename": encodeURIComponent(file.name)},
    });
  } catch (error) {
    fail(card, `${file.name}: the Koala server did not answer (${error})`);
    return;
  }
  if (!response.ok) {
    let message = `${file.name}: the server answered ${response.status}`;
    try { message = (await response.json()).error || message; } catch (error) { /* not JSON */ }
    fail(card, message);
    return;
  }
  const colorized = URL.createObjectURL(await response.blob());
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
  card.dataset.state = "done";
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
