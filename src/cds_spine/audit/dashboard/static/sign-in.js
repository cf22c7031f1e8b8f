"use strict";
const query = new URLSearchParams(location.search);
if (query.has("failed")) {
  document.getElementById("failed").hidden = false;
}
const seconds = Number(query.get("wait"));
if (seconds > 0) {
  const minutes = Math.ceil(seconds / 60);
  document.getElementById("wait-minutes").textContent = minutes === 1 ? "a minute" : `${minutes} minutes`;
  document.getElementById("wait").hidden = false;
}
