// The participant's side of the study: fetch the next photo, show it, send the answer.
"use strict";

const $ = (id) => document.getElementById(id);
let current = null;  // id of the photo on screen, null while loading or when done
let sending = false;

function setButtons(enabled) {
  $("real").disabled = !enabled;
  $("fake").disabled = !enabled;
}

function show(question) {
  if (question.image === null) {
    current = null;
    $("question").hidden = true;
    $("instructions").hidden = true;
    $("done-count").textContent = `${question.answered} of ${question.total}`;
    $("done").hidden = false;
    return;
  }
  $("question").hidden = false;
  $("progress").textContent = `Photo ${question.answered + 1} of ${question.total}`;
  setButtons(false);
  const photo = $("photo");
  photo.classList.add("loading");
  photo.onload = () => {  // answers count only once the photo is visible
    photo.classList.remove("loading");
    current = question.image;
    setButtons(true);
  };
  photo.onerror = () => fail("the photo could not be loaded");
  photo.src = question.url;
}

function fail(message) {
  $("error").textContent = `Something went wrong: ${message}. Reload the page to continue.`;
  $("error").hidden = false;
}

async function call(url, options) {
  const response = await fetch(url, { credentials: "same-origin", ...options });
  if (!response.ok) throw new Error(`${response.status} ${response.statusText}`);
  return response.json();
}

async function answer(choice) {
  if (current === null || sending) return;
  sending = true;
  const image = current;
  current = null;
  setButtons(false);
  try {
    show(await call("/api/vote", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ image: image, answer: choice }),
    }));
  } catch (error) {
    fail(error.message);
  } finally {
    sending = false;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("real").addEventListener("click", () => answer("real"));
  $("fake").addEventListener("click", () => answer("fake"));
  document.addEventListener("keydown", (event) => {
    if (event.repeat || event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.key === "r" || event.key === "R") answer("real");
    if (event.key === "f" || event.key === "F") answer("fake");
  });
  call("/api/next").then(show).catch((error) => fail(error.message));
});
