// The editor: zones, masks (polygons) and lines (two points) drawn on the camera's picture, the
// camera file kept in step through /api/cameras/{name}/shapes (toml_edit on the server), Check
// and Save.
"use strict";
(async () => {
  const name = cameraName(), q = encodeURIComponent(name);
  document.getElementById("title").textContent = `${name}: editor`;
  const img = document.getElementById("frame"), canvas = document.getElementById("canvas"), ctx = canvas.getContext("2d");
  const toml = document.getElementById("toml"), result = document.getElementById("result"), problems = document.getElementById("problems");
  const cam = await (await fetch(`/api/cameras/${q}`)).json();
  toml.value = (await (await fetch(`/api/cameras/${q}/config`)).json()).toml;
  const shapes = {
    zones: (cam.zones || []).map((z) => ({ name: z.name, was: z.name, polygon: z.polygon, labels: z.labels })),
    lines: (cam.lines || []).map((l) => ({ name: l.name, was: l.name, points: l.points, direction: l.direction, labels: l.labels })),
    masks: cam.masks || [],
  };
  let drawing = null, dragging = null;
  const pts = (kind, s) => (kind === "lines" ? s.points : kind === "masks" ? s : s.polygon);
  const draw = () => {
    canvas.width = img.clientWidth; canvas.height = img.clientHeight;
    const W = canvas.width, H = canvas.height;
    ctx.clearRect(0, 0, W, H); ctx.lineWidth = 2; ctx.font = "14px sans-serif";
    const poly = (p, colour, close) => { ctx.strokeStyle = colour; ctx.beginPath(); p.forEach(([x, y], i) => (i ? ctx.lineTo(x * W, y * H) : ctx.moveTo(x * W, y * H))); if (close) ctx.closePath(); ctx.stroke();
      p.forEach(([x, y]) => { ctx.fillStyle = colour; ctx.fillRect(x * W - 4, y * H - 4, 8, 8); }); };
    shapes.masks.forEach((m) => { ctx.fillStyle = "#0006"; ctx.beginPath(); m.forEach(([x, y], i) => (i ? ctx.lineTo(x * W, y * H) : ctx.moveTo(x * W, y * H))); ctx.fill(); poly(m, "#444", true); });
    shapes.zones.forEach((z) => { poly(z.polygon, "#ffd200", true); if (z.polygon[0]) { ctx.fillStyle = "#ffd200"; ctx.fillText(z.name, z.polygon[0][0] * W + 4, z.polygon[0][1] * H + 16); } });
    shapes.lines.forEach((l) => {
      if (l.points.length < 2) return poly(l.points, "#00dcff", false);
      poly(l.points, "#00dcff", false);
      const [[ax, ay], [bx, by]] = l.points.map(([x, y]) => [x * W, y * H]);
      const mx = (ax + bx) / 2, my = (ay + by) / 2, len = Math.hypot(bx - ax, by - ay) || 1, rx = -(by - ay) / len, ry = (bx - ax) / len;
      ctx.fillStyle = "#00dcff"; ctx.fillText(`${l.name}: left`, mx - rx * 40, my - ry * 40); ctx.fillText("right", mx + rx * 30, my + ry * 30);
      ctx.fillText("A", ax + 4, ay - 4); ctx.fillText("B", bx + 4, by - 4);
    });
    if (drawing) poly(pts(drawing.kind, drawing.shape), "#f0f", drawing.kind !== "lines");
  };
  const list = () => {
    const t = document.getElementById("shapes"); t.innerHTML = "";
    for (const kind of ["zones", "lines", "masks"]) shapes[kind].forEach((s, i) => {
      const tr = el("tr"); tr.appendChild(el("td", {}, kind.slice(0, -1)));
      const td = el("td");
      if (kind !== "masks") {
        const n = el("input", { value: s.name, className: `name-${kind}` }); n.onchange = () => { s.name = n.value; sync(); }; td.appendChild(n);
        const lb = el("input", { value: (s.labels || []).join(","), placeholder: "labels, e.g. person,car" }); lb.onchange = () => { s.labels = lb.value ? lb.value.split(",").map((x) => x.trim()) : null; sync(); }; td.appendChild(lb);
      }
      tr.appendChild(td);
      const del = el("button", {}, "delete"); del.onclick = () => { shapes[kind].splice(i, 1); sync(); }; tr.appendChild(el("td")).appendChild(del);
      t.appendChild(tr);
    });
  };
  const sync = async () => {
    list(); draw();
    const r = await fetch(`/api/cameras/${q}/shapes`, { method: "POST", headers: { "content-type": "application/json", "x-lookout-write": "1" }, body: JSON.stringify({ toml: toml.value, shapes }) });
    const j = await r.json(); if (r.ok) toml.value = j.toml; else show(j);
  };
  const show = (j) => {
    problems.innerHTML = "";
    (j.problems || []).forEach((p) => problems.appendChild(el("li", { className: "problem" }, `${p.file}${p.line ? ":" + p.line : ""}: ${p.key ? p.key + ": " : ""}${p.message}`)));
    if (j.error) problems.appendChild(el("li", { className: "problem" }, j.error));
  };
  const at = (e) => { const r = canvas.getBoundingClientRect(); return [Math.min(1, Math.max(0, (e.clientX - r.left) / r.width)), Math.min(1, Math.max(0, (e.clientY - r.top) / r.height))]; };
  const unique = (base) => { let i = 1; const all = [...shapes.zones, ...shapes.lines].map((s) => s.name); while (all.includes(`${base}_${i}`)) i++; return `${base}_${i}`; };
  const start = (kind) => {
    const shape = kind === "zones" ? { name: unique("zone"), was: null, polygon: [], labels: null } : kind === "lines" ? { name: unique("line"), was: null, points: [], direction: "both", labels: null } : [];
    drawing = { kind, shape }; result.textContent = kind === "lines" ? "click the line's two points" : "click the corners, then Finish shape";
  };
  const finish = () => {
    if (!drawing) return; const p = pts(drawing.kind, drawing.shape);
    if (p.length >= (drawing.kind === "lines" ? 2 : 3)) shapes[drawing.kind].push(drawing.shape);
    drawing = null; result.textContent = ""; sync();
  };
  document.getElementById("add-zone").onclick = () => start("zones");
  document.getElementById("add-line").onclick = () => start("lines");
  document.getElementById("add-mask").onclick = () => start("masks");
  document.getElementById("finish").onclick = finish;
  canvas.addEventListener("pointerdown", (e) => {
    const p = at(e);
    if (drawing) { pts(drawing.kind, drawing.shape).push(p); if (drawing.kind === "lines" && drawing.shape.points.length === 2) finish(); else draw(); return; }
    for (const kind of ["zones", "lines", "masks"]) shapes[kind].forEach((s) => pts(kind, s).forEach((v, i) => {
      if (Math.hypot((v[0] - p[0]) * canvas.width, (v[1] - p[1]) * canvas.height) < 10) dragging = { list: pts(kind, s), i };
    }));
  });
  canvas.addEventListener("pointermove", (e) => { if (dragging) { dragging.list[dragging.i] = at(e); draw(); } });
  canvas.addEventListener("pointerup", () => { if (dragging) { dragging = null; sync(); } });
  document.getElementById("check").onclick = async () => {
    result.textContent = "checking…";
    const r = await fetch("/api/check", { method: "POST", headers: { "content-type": "application/json", "x-lookout-write": "1" }, body: JSON.stringify({ camera: name, toml: toml.value }) });
    const j = await r.json().catch(() => ({ error: r.statusText })); show(j); result.textContent = j.ok ? "valid" : "errors"; result.className = j.ok ? "ok" : "problem";
  };
  document.getElementById("save").onclick = async () => {
    result.textContent = "saving…";
    const token = document.getElementById("token").value;
    const r = await fetch(`/api/cameras/${q}/config`, { method: "PUT", headers: { "content-type": "text/plain", "x-lookout-write": "1", authorization: `Bearer ${token}` }, body: toml.value });
    const j = await r.json().catch(() => ({ error: r.statusText })); show(j); result.textContent = r.ok ? `saved: ${j.applied}` : `not saved (${r.status})`; result.className = r.ok ? "ok" : "problem";
  };
  const refresh = () => { img.src = `/api/cameras/${q}/frame.jpg?t=${Date.now()}`; };
  img.onload = () => { draw(); setTimeout(refresh, 1000); }; img.onerror = () => setTimeout(refresh, 2000);
  refresh(); list();
})();
