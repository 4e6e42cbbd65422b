/* attnscope viewer: draws attention maps embedded in this page. No network, no eval:
 * data comes from base64 blobs in a <script type="application/octet-stream"> element,
 * inflated with DecompressionStream; every label is set with textContent. */
"use strict";
window.attnscopeView = window.attnscopeView || (function () {
  const TILE = 512, MASKED = 0xffd8d8d8, LINES_MAX = 96;
  const VIRIDIS = ["440154", "482878", "3e4989", "31688e", "26828e", "1f9e89", "35b779",
    "6ece58", "b5de2b", "fde725"];
  const DIVERGING = ["2166ac", "4393c3", "92c5de", "d1e5f0", "f7f7f7", "fddbc7", "f4a582",
    "d6604d", "b2182b"];
  let f16table = null;

  function ramp(stops) {  // 256 colours as little-endian RGBA words
    const out = new Uint32Array(256);
    const rgb = stops.map(s => [0, 2, 4].map(i => parseInt(s.slice(i, i + 2), 16)));
    for (let i = 0; i < 256; i++) {
      const t = i / 255 * (rgb.length - 1), j = Math.min(Math.floor(t), rgb.length - 2);
      const f = t - j, c = [0, 1, 2].map(k => Math.round(rgb[j][k] * (1 - f) + rgb[j + 1][k] * f));
      out[i] = (0xff << 24 | c[2] << 16 | c[1] << 8 | c[0]) >>> 0;
    }
    return out;
  }
  const CMAPS = {seq: ramp(VIRIDIS), div: ramp(DIVERGING)};

  function f16() {
    if (f16table) return f16table;
    f16table = new Float32Array(65536);
    for (let i = 0; i < 65536; i++) {
      const s = i & 0x8000 ? -1 : 1, e = (i >> 10) & 31, m = i & 1023;
      f16table[i] = e === 0 ? s * m * 5.960464477539063e-8 : e === 31 ? (m ? NaN : s * Infinity)
        : s * (1 + m / 1024) * Math.pow(2, e - 15);
    }
    return f16table;
  }

  function el(tag, cls, parent, text) {
    const n = document.createElement(tag);
    if (cls) n.className = cls;
    if (text !== undefined) n.textContent = text;
    if (parent) parent.appendChild(n);
    return n;
  }

  function boot(uid) {
    const root = document.getElementById(uid);
    const meta = JSON.parse(document.getElementById(uid + "-meta").textContent);
    // part 0 (what the first view needs) is parsed before this script; part 1 follows
    // it, so it is read once the document has loaded (at once in a notebook)
    const texts = [document.getElementById(uid + "-data0").textContent, null];
    const loaded = document.readyState === "loading" ? new Promise(r =>
      document.addEventListener("DOMContentLoaded", r, {once: true})) : Promise.resolve();
    const rest = loaded.then(() => { texts[1] = document.getElementById(uid + "-data1").textContent; });
    const cache = new Map();

    function bytes(part, o, n) {
      const bin = atob(texts[part].substr(o, n)), u = new Uint8Array(bin.length);
      for (let k = 0; k < bin.length; k++) u[k] = bin.charCodeAt(k);
      return u;
    }
    function inflate(part, o, n) {
      // part 0 is stored plain and resolves in microtasks: the first view is drawn
      // before the HTML parser goes on to the (large) part 1
      if (part === 0) return Promise.resolve(bytes(0, o, n));
      return rest.then(() => {
        const s = new Blob([bytes(1, o, n)]).stream().pipeThrough(new DecompressionStream("deflate"));
        return new Response(s).arrayBuffer();
      }).then(b => new Uint8Array(b));
    }
    function raw(i) {  // blob i -> Promise<Uint8Array>
      if (cache.has(i)) { const p = cache.get(i); cache.delete(i); cache.set(i, p); return p; }
      const p = inflate(meta.blobs[3 * i], meta.blobs[3 * i + 1], meta.blobs[3 * i + 2]);
      cache.set(i, p);
      if (cache.size > 512) cache.delete(cache.keys().next().value);
      return p;
    }
    const halfs = new Map();
    function values(i) {  // float16 planes -> Float32Array
      if (halfs.has(i)) return halfs.get(i);
      const p = raw(i).then(u => {
        const n = u.length >> 1, t = f16(), out = new Float32Array(n);
        for (let k = 0; k < n; k++) out[k] = t[u[k] | (u[n + k] << 8)];
        return out;
      });
      halfs.set(i, p);
      if (halfs.size > 200) halfs.delete(halfs.keys().next().value);
      return p;
    }

    // ---- state ---------------------------------------------------------------------
    const entries = meta.entries, labels = meta.labels;
    const uniq = xs => xs.filter((x, i) => xs.indexOf(x) === i);
    const steps = meta.steps, modules = uniq(entries.map(e => e.module));
    const samples = uniq(entries.map(e => e.sample));
    const st = {step: steps.length - 1, module: 0, sample: 0, head: null, view: "matrix",
      diff: false, stepB: 0, reduce: "mean", scale: "linear", topk: 3, view0: null};
    const find = (s, m, p) => entries.find(e => e.step === steps[s] &&
      e.module === modules[m] && e.sample === samples[p]);
    const cur = () => find(st.step, st.module, st.sample);
    const other = () => find(st.stepB, st.module, st.sample);

    // ---- layout --------------------------------------------------------------------
    el("div", "as-title", root, meta.title);
    const bar = el("div", "as-bar", root);
    function control(label, node) { const l = el("label", "", bar, label + " "); l.appendChild(node); return node; }
    const selModule = control("module", el("select", "as-module"));
    modules.forEach((m, i) => { const o = el("option", "", selModule, m || "(map)"); o.value = i; });
    const selSample = control("sample", el("select", "as-sample"));
    samples.forEach((s, i) => { const o = el("option", "", selSample, String(s)); o.value = i; });
    const selHead = control("head", el("select", "as-head"));
    const btnMean = el("button", "as-mean", bar, "mean \u21c4 head");
    const stepBox = el("span", "as-stepbox", bar);
    const slider = el("input", "as-step", el("label", "", stepBox, "step "));
    slider.type = "range"; slider.min = 0; slider.max = steps.length - 1; slider.value = st.step;
    const stepName = el("span", "as-stepname", stepBox);
    const diffBox = el("input", "as-diff", el("label", "", stepBox, "difference "));
    diffBox.type = "checkbox";
    const selB = el("select", "as-stepb", el("label", "", stepBox, " minus "));
    steps.forEach((s, i) => { const o = el("option", "", selB, String(s)); o.value = i; });
    if (steps.length < 2) stepBox.style.display = "none";
    const selView = control("view", el("select", "as-view"));
    [["matrix", "matrix"], ["lines", "head view (lines)"]].forEach(([v, t]) => {
      const o = el("option", "", selView, t); o.value = v; });
    const selReduce = control("blocks", el("select", "as-reduce"));
    ["mean", "max"].forEach(v => { el("option", "", selReduce, v).value = v; });
    const selScale = control("colour", el("select", "as-scale"));
    ["linear", "sqrt", "log"].forEach(v => { el("option", "", selScale, v).value = v; });
    const topk = control("top-k", el("input", "as-topk"));
    topk.type = "number"; topk.min = 1; topk.max = 50; topk.value = st.topk;
    const btnFit = el("button", "as-fit", bar, "fit");
    const body = el("div", "as-body", root);
    const overview = el("div", "as-overview", body);
    const main = el("div", "as-main", body);
    const colLabels = el("div", "as-cols", main), rowLabels = el("div", "as-rows", main);
    const canvas = el("canvas", "as-canvas", main);
    const W = 640, H = 640;
    canvas.width = W; canvas.height = H;
    const side = el("div", "as-side", main);
    const tip = el("div", "as-tip", root);
    const legend = el("div", "as-legend", root);
    const legendBar = el("canvas", "", legend); legendBar.width = 200; legendBar.height = 10;
    const legendText = el("span", "", legend);
    const status = el("div", "as-status", root);
    const ctx = canvas.getContext("2d");
    const off = document.createElement("canvas"), offCtx = off.getContext("2d");
    let drawn = 0, seq = 0;

    function headIndex(e) {
      if (st.head === null || st.head === "mean") {
        const m = e.heads.indexOf("mean");
        return m >= 0 ? m : 0;
      }
      const i = e.heads.indexOf(st.head);
      return i >= 0 ? i : 0;
    }
    function labelOf(list, i) { return list >= 0 ? labels[list][i] : String(i); }

    // ---- overview thumbnails -------------------------------------------------------
    async function drawOverview() {
      overview.replaceChildren();
      const table = el("table", "", overview);
      const rows = modules.map((m, i) => [i, find(st.step, i, st.sample)]).filter(r => r[1] && !r[1].graph);
      const maxH = Math.max(0, ...rows.map(r => r[1].heads.length));
      const head = el("tr", "", el("thead", "", table));
      el("th", "", head, "");
      for (let h = 0; h < maxH; h++) {
        const names = rows.map(r => r[1].heads[h]).filter(x => x !== undefined);
        el("th", "", head, names.length ? names[0] : "");
      }
      const tb = el("tbody", "", table);
      for (const [mi, e] of rows) {
        const tr = el("tr", mi === st.module ? "sel" : "", tb);
        el("th", "as-mod", tr, e.short || e.module || "(map)").title = e.module;
        const u = await raw(e.thumb.blob);
        const n = e.thumb.rows * e.thumb.cols;
        e.heads.forEach((name, h) => {
          const c = el("canvas", "as-thumb", el("td", "", tr));
          c.width = e.thumb.cols; c.height = e.thumb.rows;
          c.dataset.module = mi; c.dataset.head = name;
          c.title = (e.module || "map") + " \u00b7 head " + name;
          if (mi === st.module && h === headIndex(e)) c.classList.add("sel");
          const img = new ImageData(c.width, c.height), px = new Uint32Array(img.data.buffer);
          for (let k = 0; k < n; k++) { const v = u[h * n + k]; px[k] = v === 255 ? MASKED : CMAPS.seq[v]; }
          c.getContext("2d").putImageData(img, 0, 0);
          c.addEventListener("click", () => { st.module = mi; st.head = name; sync(true); });
        });
      }
    }

    // ---- matrix view ---------------------------------------------------------------
    function fit(e) {
      const cpp = Math.max(e.rows / H, e.cols / W);
      st.view0 = {x: 0, y: 0, cpp: cpp};
      return {x: 0, y: 0, cpp: cpp};
    }
    let view = null;
    function level(hm) {  // coarsest level whose blocks span at most ~1.5 screen pixels
      let best = hm.levels[0];
      for (const lv of hm.levels) if (Math.max(lv.fy, lv.fx) <= 1.5 * view.cpp && lv.fy >= best.fy) best = lv;
      return best;  // block means are linear, so coarse levels also serve the difference
    }
    async function region(hm, lv, r0, r1, c0, c1, kind) {  // Float32Array of the block
      const w = c1 - c0, h = r1 - r0, out = new Float32Array(w * h);
      const blobs = lv[kind] || lv.mean, jobs = [];
      for (let ty = Math.floor(r0 / TILE); ty * TILE < r1; ty++)
        for (let tx = Math.floor(c0 / TILE); tx * TILE < c1; tx++) jobs.push([ty, tx, values(blobs[ty * lv.tx + tx])]);
      for (const [ty, tx, p] of jobs) {
        const t = await p, tw = Math.min(TILE, lv.cols - tx * TILE);
        const ya = Math.max(r0, ty * TILE), yb = Math.min(r1, (ty + 1) * TILE);
        const xa = Math.max(c0, tx * TILE), xb = Math.min(c1, (tx + 1) * TILE);
        for (let y = ya; y < yb; y++) {
          const src = (y - ty * TILE) * tw - tx * TILE, dst = (y - r0) * w - c0;
          for (let x = xa; x < xb; x++) out[dst + x] = t[src + x];
        }
      }
      return out;
    }
    function paint(vals, w, h, lo, hi, cmap) {
      if (off.width !== w || off.height !== h) { off.width = w; off.height = h; }
      const img = new ImageData(w, h), px = new Uint32Array(img.data.buffer), c = CMAPS[cmap];
      if (cmap === "seq" && st.scale === "linear") {  // the common case, without a call per cell
        const f = 255 / ((hi - lo) || 1);
        for (let k = 0; k < vals.length; k++) {
          const v = vals[k];
          if (v !== v) { px[k] = MASKED; continue; }
          const i = ((v - lo) * f + 0.5) | 0;
          px[k] = c[i < 0 ? 0 : i > 255 ? 255 : i];
        }
      } else {
        const idx = colourIndex(lo, hi, cmap);
        for (let k = 0; k < vals.length; k++) {
          const v = vals[k];
          px[k] = v !== v ? MASKED : c[idx(v)];
        }
      }
      offCtx.putImageData(img, 0, 0);
    }
    function colourIndex(lo, hi, cmap) {  // value -> 0..255 under the chosen scale
      const clamp = t => Math.max(0, Math.min(255, Math.round(t * 255)));
      if (cmap === "div") {  // symmetric around 0; sqrt and log both stretch small changes
        const m = Math.max(Math.abs(lo), Math.abs(hi)) || 1, sq = st.scale !== "linear";
        return v => { const t = v / m; return clamp(0.5 + 0.5 * (sq ? Math.sign(t) * Math.sqrt(Math.abs(t)) : t)); };
      }
      const span = (hi - lo) || 1;
      if (st.scale === "sqrt") return v => clamp(Math.sqrt(Math.max(0, (v - lo) / span)));
      if (st.scale === "log") {
        const top = Math.log10(hi || 1);
        return v => clamp(v > 0 ? (Math.log10(v) - top + 4) / 4 : 0);
      }
      return v => clamp((v - lo) / span);
    }
    function setLegend(lo, hi, cmap, note) {
      if (legendBar.dataset.cmap !== cmap) {  // the bar changes only with the colour map
        const img = new ImageData(200, 10), px = new Uint32Array(img.data.buffer), c = CMAPS[cmap];
        for (let k = 0; k < px.length; k++) px[k] = c[Math.round((k % 200) / 199 * 255)];
        legendBar.getContext("2d").putImageData(img, 0, 0);
        legendBar.dataset.cmap = cmap;
      }
      legendText.textContent = " " + (st.scale === "log" && cmap === "seq" ? fmt(hi / 1e4) : fmt(lo)) + " \u2026 " + fmt(hi) + (note ? "  (" + note + ")" : "");
    }
    const fmt = v => (v === undefined || v !== v) ? "masked" : Math.abs(v) >= 0.01 || v === 0 ? v.toFixed(4) : v.toExponential(3);

    async function drawMatrix(e, token) {
      const hi0 = headIndex(e), hm = e.maps[hi0], lv = level(hm);
      const b = st.diff ? other() : null;
      if (st.diff && (!b || b.rows !== e.rows || b.cols !== e.cols)) {
        status.textContent = "difference: step " + steps[st.stepB] + " has no map of the same shape";
      }
      const useB = st.diff && b && b.rows === e.rows && b.cols === e.cols;
      const r0 = Math.max(0, Math.floor(view.y / lv.fy)), r1 = Math.min(lv.rows, Math.ceil((view.y + H * view.cpp) / lv.fy));
      const c0 = Math.max(0, Math.floor(view.x / lv.fx)), c1 = Math.min(lv.cols, Math.ceil((view.x + W * view.cpp) / lv.fx));
      ctx.fillStyle = "#f4f4f4"; ctx.fillRect(0, 0, W, H);
      if (r1 <= r0 || c1 <= c0) return;
      const kind = useB ? "mean" : st.reduce;
      const a = await region(hm, lv, r0, r1, c0, c1, kind);
      let lo = 0, hi = hm.vmax, cmap = "seq", note = "";
      if (useB) {
        const hb = b.maps[Math.min(hi0, b.maps.length - 1)], lb = hb.levels[hm.levels.indexOf(lv)];
        const bv = await region(hb, lb, r0, r1, c0, c1, "mean");
        let m = 0;
        for (let k = 0; k < a.length; k++) { a[k] -= bv[k]; if (Math.abs(a[k]) > m) m = Math.abs(a[k]); }
        lo = -m || -1e-6; hi = m || 1e-6; cmap = "div";
        note = steps[st.step] + " \u2212 " + steps[st.stepB];
      }
      if (token !== seq) return;
      paint(a, c1 - c0, r1 - r0, lo, hi, cmap);
      ctx.imageSmoothingEnabled = false;
      const dx = (c0 * lv.fx - view.x) / view.cpp, dy = (r0 * lv.fy - view.y) / view.cpp;
      const dw = Math.min((c1 - c0) * lv.fx, e.cols - c0 * lv.fx) / view.cpp;
      const dh = Math.min((r1 - r0) * lv.fy, e.rows - r0 * lv.fy) / view.cpp;
      ctx.drawImage(off, 0, 0, c1 - c0, r1 - r0, dx, dy, dw, dh);
      const li = hm.levels.indexOf(lv);
      setLegend(lo, hi, cmap, note || (li ? "level " + li + ": " + lv.fy + "\u00d7" + lv.fx + " block " + kind : ""));
      drawLabels(e);
    }
    function drawLabels(e) {
      rowLabels.replaceChildren(); colLabels.replaceChildren();
      const px = 1 / view.cpp, every = Math.max(1, Math.ceil(12 / px));
      const put = (box, list, n, start, len, vertical) => {
        const first = Math.max(0, Math.floor(start)), last = Math.min(n, Math.ceil(start + len * view.cpp));
        for (let i = first - first % every; i < last; i += every) {
          if (i < first) continue;
          const d = el("div", vertical ? "as-clab" : "as-rlab", box, labelOf(list, i));
          const pos = (i + 0.5 - start) * px;
          if (vertical) d.style.left = (pos - 6) + "px"; else d.style.top = (pos - 7) + "px";
        }
      };
      if (e.rows > 1) put(rowLabels, e.ql, e.rows, view.y, H, false);
      put(colLabels, e.kl, e.cols, view.x, W, true);
    }

    // ---- 1-D bars --------------------------------------------------------------------
    async function drawBars(e, token) {
      const hm = e.maps[headIndex(e)], lv = hm.levels[0];
      let a = await region(hm, lv, 0, 1, 0, e.cols, "mean");
      const b = st.diff ? other() : null, useB = b && b.cols === e.cols;
      if (useB) {
        const bv = await region(b.maps[Math.min(headIndex(e), b.maps.length - 1)], b.maps[0].levels[0], 0, 1, 0, e.cols, "mean");
        a = a.map((v, k) => v - bv[k]);
      }
      if (token !== seq) return;
      ctx.fillStyle = "#ffffff"; ctx.fillRect(0, 0, W, H);
      const top = Math.max(1e-12, ...a.filter(v => v === v).map(Math.abs)), base = useB ? H / 2 : H - 20;
      const span = useB ? H / 2 - 20 : H - 40;
      if (meta.signal && meta.signal.n === e.cols) {
        const sig = await values(meta.signal.blob), s0 = meta.signal.min, s1 = meta.signal.max;
        ctx.strokeStyle = "#999"; ctx.beginPath();
        for (let x = 0; x < W; x++) {
          const k = Math.floor(view.x + x * view.cpp);
          if (k < 0 || k >= e.cols) continue;
          ctx.lineTo(x, H - 20 - (sig[k] - s0) / ((s1 - s0) || 1) * (H - 40));
        }
        ctx.stroke();
      }
      for (let x = 0; x < W; x++) {
        const k0 = Math.floor(view.x + x * view.cpp), k1 = Math.max(k0 + 1, Math.floor(view.x + (x + 1) * view.cpp));
        let v = 0;
        for (let k = Math.max(0, k0); k < Math.min(e.cols, k1); k++) if (Math.abs(a[k]) > Math.abs(v)) v = a[k];
        if (k0 >= e.cols || k1 <= 0) continue;
        ctx.fillStyle = v < 0 ? "#2166ac" : useB ? "#b2182b" : "#31688e";
        const h = v / top * span;
        ctx.fillRect(x, base - Math.max(h, 0), 1, Math.abs(h));
      }
      setLegend(useB ? -top : 0, top, useB ? "div" : "seq", useB ? steps[st.step] + " \u2212 " + steps[st.stepB] : "bar height");
      rowLabels.replaceChildren();
      drawLabels({rows: 1, cols: e.cols, kl: e.kl, ql: -1});
    }

    // ---- head view: token-to-token lines -----------------------------------------------
    async function drawLines(e, token) {
      const hm = e.maps[headIndex(e)], a = await region(hm, hm.levels[0], 0, e.rows, 0, e.cols, "mean");
      if (token !== seq) return;
      side.replaceChildren();
      const k = Math.max(1, Math.min(50, +topk.value || 3)), pitch = Math.min(20, (H - 10) / Math.max(e.rows, e.cols));
      ctx.fillStyle = "#ffffff"; ctx.fillRect(0, 0, W, H);
      const left = el("div", "as-ltok", side), right = el("div", "as-rtok", side);
      const draw = only => {
        ctx.fillStyle = "#ffffff"; ctx.fillRect(0, 0, W, H);
        for (let q = 0; q < e.rows; q++) {
          if (only !== undefined && only !== q) continue;
          const row = Array.from(a.subarray(q * e.cols, (q + 1) * e.cols)).map((v, j) => [v, j]).filter(p => p[0] === p[0]);
          row.sort((x, y) => y[0] - x[0]);
          for (const [v, j] of row.slice(0, k)) {
            ctx.strokeStyle = "rgba(49,104,142," + Math.min(1, v / (hm.vmax || 1)).toFixed(3) + ")";
            ctx.lineWidth = 1 + 3 * v / (hm.vmax || 1);
            ctx.beginPath(); ctx.moveTo(10, 10 + (q + 0.5) * pitch); ctx.lineTo(W - 10, 10 + (j + 0.5) * pitch); ctx.stroke();
          }
        }
      };
      for (let q = 0; q < e.rows; q++) {
        const d = el("div", "as-tok", left, labelOf(e.ql, q));
        d.style.top = (10 + q * pitch) + "px"; d.style.height = pitch + "px";
        d.addEventListener("mouseenter", () => draw(q)); d.addEventListener("mouseleave", () => draw());
      }
      for (let j = 0; j < e.cols; j++) {
        const d = el("div", "as-tok", right, labelOf(e.kl, j));
        d.style.top = (10 + j * pitch) + "px"; d.style.height = pitch + "px";
      }
      draw();
      setLegend(0, hm.vmax, "seq", "top-" + k + " keys per query");
    }

    // ---- graph: top-k edges ---------------------------------------------------------
    async function drawGraph(e, token) {
      const hm = e.maps[headIndex(e)];
      let w = await values(hm.blob);
      const eiRaw = await raw(e.ei), ei = new Int32Array(eiRaw.buffer, eiRaw.byteOffset, eiRaw.length / 4);
      const b = st.diff ? other() : null;
      let useB = b && b.graph && b.edges === e.edges;
      if (useB) {  // a difference only over the very same edges
        const r = await raw(b.ei);
        useB = r.length === eiRaw.length && r.every((v, i) => v === eiRaw[i]);
      }
      if (st.diff && !useB) status.textContent += " \u00b7 difference: the other step has other edges";
      if (useB) {
        const wb = await values(b.maps[Math.min(headIndex(e), b.maps.length - 1)].blob);
        w = w.map((v, i) => v - wb[i]);
      }
      if (token !== seq) return;
      const E = e.edges, n = Math.max(1, e.nodes), k = Math.max(1, Math.min(200, (+topk.value || 3) * 5));
      const mag = v => useB ? Math.abs(v) : v;
      const order = Array.from({length: E}, (_, i) => i).filter(i => w[i] === w[i]).sort((x, y) => mag(w[y]) - mag(w[x])).slice(0, k);
      const top = useB ? Math.max(1e-12, ...order.map(i => Math.abs(w[i]))) : (hm.vmax || 1);
      ctx.fillStyle = "#ffffff"; ctx.fillRect(0, 0, W, H);
      const pos = i => [W / 2 + (W / 2 - 40) * Math.cos(2 * Math.PI * i / n), H / 2 + (H / 2 - 40) * Math.sin(2 * Math.PI * i / n)];
      ctx.fillStyle = "#888";
      for (let i = 0; i < n && n <= 2000; i++) { const [x, y] = pos(i); ctx.fillRect(x - 1.5, y - 1.5, 3, 3); }
      for (const i of order) {
        const [x0, y0] = pos(ei[i]), [x1, y1] = pos(ei[E + i]), t = Math.abs(w[i]) / top;
        ctx.strokeStyle = (w[i] < 0 ? "rgba(33,102,172," : "rgba(178,24,43,") + Math.max(0.15, t).toFixed(3) + ")";
        ctx.lineWidth = 1 + 3 * t;
        ctx.beginPath();
        if (ei[i] === ei[E + i]) {  // self loop: a small circle outside the node
          const r = Math.hypot(x0 - W / 2, y0 - H / 2) || 1;
          ctx.arc(x0 + 8 * (x0 - W / 2) / r, y0 + 8 * (y0 - H / 2) / r, 7, 0, 2 * Math.PI);
        } else { ctx.moveTo(x0, y0); ctx.lineTo(x1, y1); }
        ctx.stroke();
      }
      side.replaceChildren();
      const table = el("table", "as-edges", side);
      const hr = el("tr", "", table);
      ["source", "target", useB ? "difference" : "weight"].forEach(t => el("th", "", hr, t));
      for (const i of order) {
        const tr = el("tr", "", table);
        el("td", "", tr, String(ei[i])); el("td", "", tr, String(ei[E + i])); el("td", "", tr, fmt(w[i]));
      }
      setLegend(useB ? -top : 0, useB ? top : hm.vmax, useB ? "div" : "seq", "top-" + k + " of " + E +
        " edges (source \u2192 target)" + (useB ? ", " + steps[st.step] + " \u2212 " + steps[st.stepB] : ""));
    }

    // ---- warm the other heads of the shown map, so switching head only paints ----------
    let warming = null;
    function prefetch(e) {
      if (!e || e.graph || warming === e) return;
      warming = e;
      let i = 0;
      const next = () => {
        if (warming !== e || i >= e.maps.length) return;
        const hm = e.maps[i++], lv = level(hm), blobs = lv[st.reduce] || lv.mean;
        if (blobs.length > 4) return;
        Promise.all(blobs.map(values)).then(() => setTimeout(next, 0));
      };
      rest.then(() => setTimeout(next, 0));
    }

    // ---- orchestration ---------------------------------------------------------------
    async function drawMain() {
      const token = ++seq, e = cur();
      colLabels.replaceChildren(); rowLabels.replaceChildren();
      if (!e) { ctx.clearRect(0, 0, W, H); status.textContent = "no map for this module in this step"; return; }
      if (!view) view = fit(e);
      const mode = e.graph ? "graph" : e.rows === 1 ? "bars" : st.view === "lines" && e.rows <= LINES_MAX && e.cols <= LINES_MAX ? "lines" : "matrix";
      root.dataset.mode = mode;
      if (mode !== "lines" && mode !== "graph") side.replaceChildren();
      status.textContent = [e.module || "(map)", steps[st.step] === null ? "" : "step " + steps[st.step],
        "sample " + e.sample, "head " + e.heads[headIndex(e)], e.graph ? e.edges + " edges" : e.rows + "\u00d7" + e.cols + " (query \u00d7 key)"].filter(Boolean).join(" \u00b7 ");
      canvas.style.display = "";
      try {
        await {matrix: drawMatrix, bars: drawBars, lines: drawLines, graph: drawGraph}[mode](e, token);
      } catch (err) { status.textContent = "could not draw: " + err; throw err; }
      if (token === seq) {
        if (!root.dataset.ready) root.dataset.readyMs = performance.now().toFixed(1);
        root.dataset.drawn = ++drawn; root.dataset.ready = "1";
        prefetch(e);
      }
    }
    function sync(keepView) {
      const e = cur();
      selModule.value = st.module; selSample.value = st.sample; slider.value = st.step; selB.value = st.stepB;
      stepName.textContent = " " + (steps[st.step] === null ? "" : steps[st.step]) + " ";
      if (e) {
        selHead.replaceChildren();
        e.heads.forEach(h => { const o = el("option", "", selHead, h === "mean" ? "mean of heads" : "head " + h); o.value = h; });
        selHead.value = e.heads[headIndex(e)];
        if (!keepView || !view || !st.view0 || view.cpp > Math.max(e.rows / H, e.cols / W) * 1.0001 || view.x > e.cols || view.y > e.rows) view = fit(e);
      }
      overview.querySelectorAll(".sel").forEach(n => n.classList.remove("sel"));
      overview.querySelectorAll("tr").forEach(tr => { if (tr.querySelector(`canvas[data-module="${st.module}"]`)) tr.classList.add("sel"); });
      if (e) {
        const t = overview.querySelector(`canvas[data-module="${st.module}"][data-head="${CSS.escape(e.heads[headIndex(e)])}"]`);
        if (t) t.classList.add("sel");
      }
      return drawMain();
    }
    const redraw = () => drawOverview().then(() => sync(true));

    // ---- events ---------------------------------------------------------------------
    selModule.addEventListener("change", () => { st.module = +selModule.value; view = null; sync(false); });
    selSample.addEventListener("change", () => { st.sample = +selSample.value; view = null; redraw(); });
    selHead.addEventListener("change", () => { st.head = selHead.value; sync(true); });
    btnMean.addEventListener("click", () => {
      const e = cur(); if (!e) return;
      const name = e.heads[headIndex(e)];
      st.head = name === "mean" ? (st.lastHead || e.heads[0]) : "mean";
      if (name !== "mean") st.lastHead = name;
      sync(true);
    });
    slider.addEventListener("input", () => { st.step = +slider.value; redraw(); });
    diffBox.addEventListener("change", () => { st.diff = diffBox.checked; sync(true); });
    selB.addEventListener("change", () => { st.stepB = +selB.value; sync(true); });
    selView.addEventListener("change", () => { st.view = selView.value; sync(true); });
    selReduce.addEventListener("change", () => { st.reduce = selReduce.value; sync(true); });
    selScale.addEventListener("change", () => { st.scale = selScale.value; sync(true); });
    topk.addEventListener("change", () => sync(true));
    btnFit.addEventListener("click", () => { view = null; sync(false); });
    let drag = null, pending = false;
    const schedule = () => { if (!pending) { pending = true; requestAnimationFrame(() => { pending = false; drawMain(); }); } };
    canvas.addEventListener("wheel", ev => {
      const e = cur(); if (!e || e.graph || root.dataset.mode === "lines") return;
      ev.preventDefault();
      const r = canvas.getBoundingClientRect(), mx = ev.clientX - r.left, my = ev.clientY - r.top;
      const cx = view.x + mx * view.cpp, cy = view.y + my * view.cpp;
      const fitCpp = Math.max(e.rows / H, e.cols / W);
      view.cpp = Math.min(fitCpp, Math.max(1 / 48, view.cpp * (ev.deltaY > 0 ? 1.25 : 0.8)));
      view.x = cx - mx * view.cpp; view.y = e.rows === 1 ? 0 : cy - my * view.cpp;
      schedule();
    }, {passive: false});
    canvas.addEventListener("mousedown", ev => { drag = [ev.clientX, ev.clientY]; });
    window.addEventListener("mouseup", () => { drag = null; });
    canvas.addEventListener("mouseleave", () => { tip.style.display = "none"; });
    canvas.addEventListener("mousemove", async ev => {
      const e = cur(); if (!e || !view) return;
      if (drag) {
        view.x -= (ev.clientX - drag[0]) * view.cpp; if (e.rows > 1) view.y -= (ev.clientY - drag[1]) * view.cpp;
        drag = [ev.clientX, ev.clientY]; schedule(); return;
      }
      if (e.graph || root.dataset.mode === "lines") return;
      const r = canvas.getBoundingClientRect(), mx = ev.clientX - r.left, my = ev.clientY - r.top;
      const q = e.rows === 1 ? 0 : Math.floor(view.y + my * view.cpp), k = Math.floor(view.x + mx * view.cpp);
      if (q < 0 || k < 0 || q >= e.rows || k >= e.cols) { tip.style.display = "none"; return; }
      const hm = e.maps[headIndex(e)], lv = hm.levels[0];
      const v = (await region(hm, lv, q, q + 1, k, k + 1, "mean"))[0];
      let line = (e.rows > 1 ? "query " + q + " " + labelOf(e.ql, q) + " \u2192 " : "") + "key " + k + " " + labelOf(e.kl, k) + ": " + fmt(v);
      const b = st.diff ? other() : null;
      if (b && b.rows === e.rows && b.cols === e.cols) {
        const hb = b.maps[Math.min(headIndex(e), b.maps.length - 1)];
        const w = (await region(hb, hb.levels[0], q, q + 1, k, k + 1, "mean"))[0];
        line += " \u2212 " + fmt(w) + " = " + fmt(v - w);
      }
      tip.textContent = line;
      tip.style.display = "block";
      const rr = root.getBoundingClientRect();
      tip.style.left = (ev.clientX - rr.left + 14) + "px"; tip.style.top = (ev.clientY - rr.top + 14) + "px";
    });
    redraw().catch(err => { status.textContent = "could not draw: " + err; });
  }
  return boot;
})();
