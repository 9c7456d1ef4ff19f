// The explorer's only script: copy buttons for ids, and the home page's live
// parts, refreshed from /api/home every second (no reload). Builds DOM nodes
// with textContent only, so nothing from the API is parsed as HTML.
"use strict";

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v; else node.setAttribute(k, v);
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function short(hex) {
  if (!hex || hex.length <= 17) return hex || "";
  const prefix = hex.startsWith("0x") ? "0x" : "";
  const body = hex.slice(prefix.length);
  return prefix + body.slice(0, 8) + "\u2026" + body.slice(-6);
}

function copyButton(hex) {
  return el("button", {type: "button", class: "copy", "data-copy": hex, title: "copy " + hex, "aria-label": "copy"});
}

function idlink(kind, hex) {
  return el("span", {class: "id"}, el("a", {href: "/" + kind + "/" + hex, title: hex}, short(hex)), copyButton(hex));
}

function hexval(hex) {
  return el("span", {class: "id", title: hex}, short(hex), copyButton(hex));
}

function clock(ms) {
  if (!ms) return "-";
  const d = new Date(ms);
  const pad = (n, w) => String(n).padStart(w || 2, "0");
  return pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds()) + "." + pad(d.getMilliseconds(), 3);
}

function yesno(ok, yes, no) {
  if (ok === null || ok === undefined) return el("span", {class: "muted"}, "-");
  return ok ? el("span", {class: "good"}, yes || "yes") : el("span", {class: "bad"}, no || "no");
}

function blockLink(h) {
  return h ? el("a", {href: "/block/" + h}, String(h)) : "-";
}

function row(...cells) {
  return el("tr", {}, ...cells.map((c) => (c instanceof Node && c.tagName === "TD") ? c : el("td", {}, c)));
}

function fill(id, rows, empty, columns) {
  const body = document.getElementById(id);
  if (!body) return;
  if (!rows.length && empty) rows = [el("tr", {}, el("td", {colspan: String(columns), class: "muted"}, empty))];
  body.replaceChildren(...rows);
}

function renderHome(d) {
  const head = document.getElementById("head");
  head.textContent = String(d.head);
  head.setAttribute("href", "/block/" + d.head);
  document.getElementById("blocks-per-s").textContent = String(d.rates.blocks_per_s);
  document.getElementById("tx-per-s").textContent = String(d.rates.tx_per_s);
  document.getElementById("bundles-per-s").textContent = String(d.rates.bundles_per_s);
  const seq = d.sequencer;
  document.getElementById("sequencer-state").replaceChildren(
    seq.up ? el("span", {class: "good"}, "up") : el("span", {class: "bad"}, "down"),
    seq.up ? ", " + seq.pending + " pending" : "");
  const note = document.getElementById("index-note");
  note.replaceChildren("Indexed blocks " + d.index.first + "\u2013" + d.head + " (" + d.index.entries +
    " entries); rates from header timestamps over the last 10 s.",
    d.index.stream_error ? el("span", {class: "bad"}, " Block stream: " + d.index.stream_error) : "");
  const faults = d.faults.map((f) => el("li", {class: "bad"}, f));
  document.getElementById("faults").replaceChildren(...(faults.length ? faults : [el("li", {class: "muted"}, "none")]));
  fill("processes", d.processes.map((p) => row(
    p.name, p.role, p.rollup || "-", el("td", {class: "mono"}, p.endpoint), p.pid || "-",
    p.paused ? el("span", {class: "warn"}, "paused") : (p.up ? el("span", {class: "good"}, "up") : el("span", {class: "bad"}, "down")),
    p.height === null ? "-" : p.height, p.lag === null ? "-" : p.lag, yesno(p.connected),
    el("td", {class: "note"}, p.note))));
  fill("latest-blocks", d.latest_blocks.map((b) => row(
    blockLink(b.height), hexval(b.hash), clock(b.timestamp_ms), b.entry_count, yesno(b.verified, "ok", "FAILED"))));
  fill("busy-blocks", d.busy_blocks.map((b) => row(
    blockLink(b.height), clock(b.timestamp_ms), b.counts.tx || 0, b.counts.bundle || 0, b.counts.vote || 0, b.counts.decision || 0)));
  fill("latest-bundles", d.latest_bundles.map((x) => row(
    idlink("bundle", x.id), blockLink(x.height), x.rollups.join(", "), x.votes,
    el("span", {class: "state state-" + x.state}, x.state), blockLink(x.decision_height))),
    "no bundles in the indexed blocks", 6);
  document.getElementById("updated").textContent = clock(Date.now());
}

function startPolling(section) {
  const url = section.getAttribute("data-poll");
  let busy = false;
  async function tick() {
    if (busy) return;
    busy = true;
    try {
      const r = await fetch(url, {cache: "no-store"});
      if (r.ok) renderHome(await r.json());
      else document.getElementById("updated").textContent = "error " + r.status;
    } catch (e) {
      document.getElementById("updated").textContent = "explorer unreachable";
    } finally {
      busy = false;
    }
  }
  setInterval(tick, 1000);
}

document.addEventListener("click", async (ev) => {
  const b = ev.target.closest("button.copy");
  if (!b) return;
  ev.preventDefault();
  try {
    await navigator.clipboard.writeText(b.getAttribute("data-copy"));
    b.classList.add("copied");
    setTimeout(() => b.classList.remove("copied"), 800);
  } catch (e) {
    window.prompt("Copy:", b.getAttribute("data-copy"));
  }
});

document.addEventListener("DOMContentLoaded", () => {
  const live = document.getElementById("live");
  if (live) startPolling(live);
});
