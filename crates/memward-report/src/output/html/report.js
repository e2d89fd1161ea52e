// memward's HTML report: an icicle flamegraph (root on top) that zooms on click and
// switches between metrics, and a timeline of heap and RSS. Everything comes from the
// JSON in #data; no network. State lives in the URL hash (#metric=leaked) so a view
// can be linked, and so a headless browser can check each view.
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("data").textContent);
  const METRICS = {
    peak: { col: 1, label: "bytes live at the peak", unit: "bytes" },
    allocated: { col: 2, label: "bytes allocated", unit: "bytes" },
    leaked: { col: 3, label: "bytes leaked (live at exit)", unit: "bytes" },
    allocations: { col: 4, label: "allocations", unit: "allocations" },
    temporary: { col: 5, label: "temporary allocations", unit: "allocations" },
  };
  const ROW = 17;
  const fmt = (n) => n.toLocaleString("en-US");
  const human = (n) => {
    const u = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let i = 0, v = n;
    while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
    return i === 0 ? fmt(n) + " bytes" : v.toFixed(1) + " " + u[i];
  };
  const state = { metric: "peak", zoom: [], search: "" };

  function readHash() {
    const params = new URLSearchParams(location.hash.slice(1));
    const m = params.get("metric");
    if (m && METRICS[m]) state.metric = m;
    state.search = params.get("search") || "";
  }

  // The tree for a metric: children keyed by frame index, root first.
  function buildTree(metric) {
    const col = METRICS[metric].col;
    const root = { name: "all", value: 0, children: new Map() };
    for (const site of data.sites) {
      const v = site[col];
      if (!v) continue;
      root.value += v;
      let node = root;
      for (const f of site[0]) {
        let child = node.children.get(f);
        if (!child) {
          child = { name: data.frames[f], value: 0, children: new Map() };
          node.children.set(f, child);
        }
        child.value += v;
        node = child;
      }
    }
    return root;
  }

  function colour(name) {
    let h = 0;
    for (let i = 0; i < name.length; i++) h = (h * 31 + name.charCodeAt(i)) >>> 0;
    return "hsl(" + (h % 60 + 0) + ",70%," + (60 + (h >> 8) % 20) + "%)";
  }

  function renderFlame() {
    const box = document.getElementById("flame");
    const tip = document.getElementById("tip");
    box.textContent = "";
    const meta = METRICS[state.metric];
    const tree = buildTree(state.metric);
    // Follow the zoom path (names from the root) as far as it still exists.
    let top = tree;
    const path = [];
    for (const name of state.zoom) {
      const next = [...top.children.values()].find((c) => c.name === name);
      if (!next) break;
      top = next;
      path.push(name);
    }
    state.zoom = path;
    const width = box.clientWidth || 1000;
    let count = 0, depthMax = 0;
    const total = tree.value;
    const needle = state.search.toLowerCase();
    function place(node, x, w, depth, pathHere) {
      if (w < 1) return;
      depthMax = Math.max(depthMax, depth);
      const el = document.createElement("div");
      el.className = "fg-node";
      if (needle && node.name.toLowerCase().includes(needle)) el.classList.add("match");
      el.style.left = x + "px";
      el.style.width = w + "px";
      el.style.top = depth * ROW + "px";
      el.style.background = depth === 0 ? "#ddd" : colour(node.name);
      el.textContent = node.name;
      const share = total ? (100 * node.value / total).toFixed(2) : "0";
      const amount = meta.unit === "bytes" ? human(node.value) : fmt(node.value);
      el.dataset.value = node.value;
      el.addEventListener("mousemove", (e) => {
        tip.style.display = "block";
        tip.style.left = e.clientX + 12 + "px";
        tip.style.top = e.clientY + 12 + "px";
        tip.textContent = node.name + ": " + amount + " (" + share + "% of " + meta.label + ")";
      });
      el.addEventListener("mouseleave", () => { tip.style.display = "none"; });
      el.addEventListener("click", () => {
        state.zoom = pathHere;
        renderFlame();
      });
      box.appendChild(el);
      count++;
      let cx = x;
      const kids = [...node.children.values()].sort((a, b) => b.value - a.value);
      for (const k of kids) {
        const kw = node.value ? w * k.value / node.value : 0;
        place(k, cx, kw, depth + 1, pathHere.concat([k.name]));
        cx += kw;
      }
    }
    // Breadcrumb row: the zoomed-into frames above the graph (click to zoom out).
    const crumbs = document.getElementById("crumbs");
    crumbs.textContent = "";
    const parts = ["all"].concat(path);
    parts.forEach((p, i) => {
      const a = document.createElement("a");
      a.href = "#";
      a.textContent = p;
      a.addEventListener("click", (e) => { e.preventDefault(); state.zoom = path.slice(0, i); renderFlame(); });
      crumbs.appendChild(a);
      if (i < parts.length - 1) crumbs.appendChild(document.createTextNode(" > "));
    });
    if (top.value > 0) place(top, 0, width, 0, path);
    else box.textContent = "No " + meta.label + " in this profile.";
    box.style.height = (depthMax + 1) * ROW + 4 + "px";
    box.dataset.nodes = count;
    box.dataset.metric = state.metric;
    document.getElementById("flame-total").textContent = meta.unit === "bytes"
      ? human(tree.value) + " " + meta.label.replace(/^bytes /, "")
      : fmt(tree.value) + " " + meta.label;
    return count;
  }

  function renderTimeline() {
    const pts = data.timeline;
    const svg = document.querySelector("#timeline svg");
    const NS = "http://www.w3.org/2000/svg";
    svg.textContent = "";
    if (pts.length === 0) return 0;
    // Wall time when the run spans several clock ticks; else allocation count.
    const byTime = pts[pts.length - 1][0] > pts[0][0];
    const xs = pts.map((p) => (byTime ? p[0] / 1e6 : p[1]));
    const W = 1000, H = 200, L = 70, B = 20;
    const xmax = Math.max(...xs) || 1, xmin = Math.min(...xs);
    const ymax = Math.max(1, ...pts.map((p) => Math.max(p[2], p[3])));
    svg.setAttribute("viewBox", "0 0 " + (W + L + 10) + " " + (H + B + 10));
    const X = (x) => L + (xmax > xmin ? (x - xmin) / (xmax - xmin) : 0) * W;
    const Y = (y) => 5 + H - (y / ymax) * H;
    function line(cls, col) {
      const pl = document.createElementNS(NS, "polyline");
      pl.setAttribute("class", cls);
      pl.setAttribute("points", pts.map((p, i) => X(xs[i]).toFixed(1) + "," + Y(p[col]).toFixed(1)).join(" "));
      svg.appendChild(pl);
    }
    function text(x, y, s, anchor) {
      const t = document.createElementNS(NS, "text");
      t.setAttribute("x", x); t.setAttribute("y", y);
      if (anchor) t.setAttribute("text-anchor", anchor);
      t.textContent = s;
      svg.appendChild(t);
    }
    line("heap", 2);
    if (pts.some((p) => p[3] > 0)) line("rss", 3);
    text(L - 4, 12, human(ymax), "end");
    text(L - 4, H + 5, "0", "end");
    text(L, H + B + 5, byTime ? xmin.toFixed(1) + " ms" : "allocation " + fmt(xmin));
    text(L + W, H + B + 5, byTime ? xmax.toFixed(1) + " ms" : "allocation " + fmt(xmax), "end");
    // The peak, marked where it happened.
    const peak = data.peak;
    const px = byTime ? peak.nanos / 1e6 : peak.allocations;
    const dot = document.createElementNS(NS, "circle");
    dot.setAttribute("cx", X(px)); dot.setAttribute("cy", Y(peak.bytes)); dot.setAttribute("r", 4);
    dot.setAttribute("fill", "#c33");
    svg.appendChild(dot);
    text(X(px) + 6, Math.max(12, Y(peak.bytes) - 6), "peak " + human(peak.bytes));
    return pts.length;
  }

  function init() {
    readHash();
    const select = document.getElementById("metric");
    for (const [k, m] of Object.entries(METRICS)) {
      const o = document.createElement("option");
      o.value = k; o.textContent = m.label;
      select.appendChild(o);
    }
    select.value = state.metric;
    select.addEventListener("change", () => {
      state.metric = select.value; state.zoom = [];
      history.replaceState(null, "", "#metric=" + state.metric);
      renderFlame();
    });
    const search = document.getElementById("search");
    search.value = state.search;
    search.addEventListener("input", () => { state.search = search.value; renderFlame(); });
    const nodes = renderFlame();
    const points = renderTimeline();
    window.addEventListener("resize", renderFlame);
    document.body.dataset.rendered = "flame:" + nodes + " timeline:" + points;
  }
  init();
})();
