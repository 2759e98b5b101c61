// The console's pages: plain JavaScript, no framework, no build step.
"use strict";
const cameraName = () => decodeURIComponent(location.pathname.split("/")[2] || "");
const el = (tag, attrs = {}, text = "") => { const e = document.createElement(tag); Object.assign(e, attrs); if (text) e.textContent = text; return e; };
const fmt = (n) => (n === null || n === undefined ? "-" : String(n));
function books(b) {
  const d = Object.entries(b.dropped).map(([k, v]) => `${k} ${v}`).join(", ");
  return `decoded ${b.decoded} = skipped ${b.skipped_by_rate + b.skipped_by_motion} + inferred ${b.inferred} + dropped (${d})`;
}
function overview() {
  const cards = document.getElementById("cards");
  const seen = {};
  const render = (data) => {
    document.getElementById("gw").textContent = ` gateway ${data.gateway_id}, ${data.provider}`;
    for (const c of data.cameras) {
      let card = seen[c.name];
      if (!card) {
        card = el("div", { className: "card", id: `card-${c.name}` });
        card.innerHTML = `<h3><a></a></h3><img alt="picture"><div class="state"></div><div class="model"></div><div class="fps"></div><div class="books"></div><div class="last"></div>`;
        card.querySelector("a").textContent = c.name; card.querySelector("a").href = `/cameras/${encodeURIComponent(c.name)}`;
        cards.appendChild(card); seen[c.name] = card;
      }
      const s = card.querySelector(".state"); s.className = `state state-${c.state}`;
      s.textContent = c.state + (c.reason ? `: ${c.reason}` : "") + (c.decoder ? ` (${c.decoder})` : "");
      card.querySelector(".model").textContent = `model ${c.model} on ${c.provider}`;
      card.querySelector(".fps").textContent = `${c.decoded_fps} fps decoded, ${c.inferred_fps} fps inferred`;
      card.querySelector(".books").textContent = books(c.books);
      card.querySelector(".last").textContent = `last event: ${fmt(c.last_event)}`;
    }
  };
  const thumbs = () => { for (const [n, card] of Object.entries(seen)) card.querySelector("img").src = `/api/cameras/${encodeURIComponent(n)}/frame.jpg?t=${Date.now()}`; };
  new EventSource("/api/cameras/stream").addEventListener("cameras", (e) => render(JSON.parse(e.data)));
  setInterval(thumbs, 5000); setTimeout(thumbs, 500);
}
function table(id, head, rows) {
  const t = document.getElementById(id); t.innerHTML = "";
  const tr = el("tr"); head.forEach((h) => tr.appendChild(el("th", {}, h))); t.appendChild(tr);
  rows.forEach((r) => { const tr = el("tr"); r.forEach((v) => tr.appendChild(el("td", {}, fmt(v)))); t.appendChild(tr); });
}
function cameraPage() {
  const name = cameraName(), q = encodeURIComponent(name);
  document.getElementById("title").textContent = name;
  document.getElementById("editlink").href = `/cameras/${q}/edit`;
  const img = document.getElementById("frame");
  // 2 fps while the page is open; each request keeps the camera's frames coming.
  const next = () => { img.src = `/api/cameras/${q}/frame.jpg?annotate=1&t=${Date.now()}`; };
  img.onload = () => setTimeout(next, 500); img.onerror = () => setTimeout(next, 2000); next();
  const info = async () => {
    const c = await (await fetch(`/api/cameras/${q}`)).json();
    document.getElementById("books").textContent = `${c.state}; ${c.decoded_fps} fps decoded, ${c.inferred_fps} inferred; ${books(c.books)}`;
    table("occupancy", ["zone", "label", "now"], (c.occupancy || []).map((o) => [o.zone, o.label, o.count]));
    table("counts", ["line", "label", "left→right", "right→left"], (c.line_counts || []).map((o) => [o.line, o.label, o.left_to_right, o.right_to_left]));
    const ev = await (await fetch(`/api/events?camera=${q}&limit=20`)).json();
    table("events", ["at", "type", "object", "snapshot"], ev.events.map((e) => [e.at, e.event.type, e.event.object_id || e.event.label, ""]));
    document.querySelectorAll("#events tr").forEach((tr, i) => {
      const e = ev.events[i - 1]; if (!e || !e.event.object_id) return;
      const a = el("a", { href: `/api/cameras/${q}/snapshots/${encodeURIComponent(e.event.object_id)}.jpg` }, "jpg"); tr.lastChild.appendChild(a);
    });
  };
  info(); setInterval(info, 1000);
}
