/* attnscope viewer, orchestration: the state, which view is shown (and why another
 * was refused, said on the page), redraws, the hover text kept current, events. */
"use strict";
window.attnscopeView = function (uid) {
  const A = window.attnscope, root = document.getElementById(uid);
  root.replaceChildren();  // the note for pages whose scripts cannot run
  const meta = JSON.parse(document.getElementById(uid + "-meta").textContent);
  const uniq = xs => xs.filter((x, i) => xs.indexOf(x) === i);
  const V = {root: root, meta: meta, entries: meta.entries, labels: meta.labels, steps: meta.steps,
    draw: {}, tips: {}, view: null, seq: 0, shown: null, hover: null};
  V.modules = uniq(meta.entries.map(e => e.module));
  V.samples = uniq(meta.entries.map(e => e.sample));
  const st = V.st = {step: V.steps.length - 1, module: 0, sample: 0, head: null, view: "matrix",
    diff: false, stepB: 0, reduce: "mean", scale: "linear", range: "model",
    topk: meta.entries[0].graph ? 20 : 3, lead: [], focus: null};
  V.find = (s, m, p) => V.entries.find(e => e.step === V.steps[s] && e.module === V.modules[m] && e.sample === V.samples[p]);
  V.cur = () => V.find(st.step, st.module, st.sample);
  V.other = () => V.find(st.stepB, st.module, st.sample);
  V.headIndex = function (e) {
    const i = e.heads.indexOf(st.head === null ? "mean" : st.head), m = e.heads.indexOf("mean");
    return i >= 0 ? i : m >= 0 && st.head === null ? m : 0;
  };
  V.headName = function (e, name) {  // "mean of heads 0, 2" under a head selection
    if (name !== "mean") return "head " + name;
    const hs = e.heads.filter(n => n !== "mean");
    return hs.length < (e.num_heads || hs.length) ? "mean of heads " + hs.join(", ") + " (of " + e.num_heads + ")"
      : "mean of all " + hs.length + " heads";
  };
  A.data(V, uid); A.layout(V); A.colour(V); A.overview(V);
  A.matrix(V); A.lines(V); A.text(V); A.graph(V);
  A.qk(V); A.long(V);
  const c = V.controls;
  V.say = msg => { A.el("div", "as-msg", V.note, msg); };

  const LABEL = {matrix: "matrix", lines: "head view (lines)", heads: "all heads (lines)", model: "model view",
    text: "tokens as text", qk: "query \u00d7 key products", bars: "bars (1-D)", graph: "graph (top-k edges)"};
  const views = e => e.graph ? ["graph"] : e.rows === 1 ? ["bars"] :
    ["matrix", "lines", "heads", "model", "text"].concat(e.qk ? ["qk"] : []);
  function pickMode(e) {  // the view asked for, or the matrix and a line saying why not
    const can = views(e);
    let mode = can.includes(st.view) ? st.view : can[0];
    const lined = mode === "lines" || mode === "heads" || mode === "model";
    if (lined && (e.rows > A.LINES_MAX || e.cols > A.LINES_MAX)) {
      V.say("the " + LABEL[mode] + " draws maps of up to " + A.LINES_MAX + " tokens; this one is " + e.rows +
        " \u00d7 " + e.cols + ", so the matrix is shown");
      mode = "matrix";
    }
    if (st.diff && mode !== "matrix" && !can.includes("bars") && !can.includes("graph")) {
      V.say("the " + LABEL[mode] + " cannot show a difference between steps; the matrix shows " +
        V.steps[st.step] + " \u2212 " + V.steps[st.stepB]);
      mode = "matrix";
    }
    c.view.replaceChildren();
    can.forEach(v => { A.el("option", "", c.view, LABEL[v]).value = v; });
    c.view.value = mode;  // the menu names the view that is shown
    return mode;
  }
  const fit = e => ({x: 0, y: 0, cpp: Math.max(e.rows / V.H, e.cols / V.W)});

  // ---- hover text: recomputed after every redraw, so it never shows an old value ---
  let tipSeq = 0;
  async function updateTip() {
    const h = V.hover, fn = V.tips[root.dataset.mode], mine = ++tipSeq;
    const text = h && fn ? await fn(h.x, h.y) : null;
    if (mine !== tipSeq) return;
    if (!text) { V.tip.style.display = "none"; return; }
    V.tip.textContent = text; V.tip.style.display = "block";
    const cr = V.canvas.getBoundingClientRect(), rr = root.getBoundingClientRect();
    V.tip.style.left = (cr.left - rr.left + h.x + 14) + "px"; V.tip.style.top = (cr.top - rr.top + h.y + 14) + "px";
  }
  V.updateTip = updateTip;

  let drawn = 0, warming = null;
  function prefetch(e) {  // decode the other heads of the shown map, so a switch only paints
    if (!e || e.graph || warming === e) return;
    warming = e;
    let i = 0;
    const next = () => {
      if (warming !== e || i >= e.maps.length) return;
      const hm = e.maps[i++], lv = V.level(hm), blobs = lv[st.reduce] || lv.mean;
      if (!blobs || blobs.length > 4) return;  // computed cells: nothing to decode
      Promise.all(blobs.map(V.values)).then(() => setTimeout(next, 0));
    };
    V.rest.then(() => setTimeout(next, 0));
  }
  async function drawMain() {
    const token = ++V.seq, e = V.cur();
    V.note.replaceChildren(); V.shown = null;
    V.colLabels.replaceChildren(); V.rowLabels.replaceChildren();
    if (!e) { V.ctx.clearRect(0, 0, V.W, V.H); V.status.textContent = "no map for this module in this step"; return; }
    const mode = pickMode(e);
    root.dataset.mode = mode;
    V.qkControls(e, mode === "qk");
    if (e.computed && e.heads.length > 1 && (st.head === null || st.head === "mean"))
      V.say("this map is computed in the page from queries and keys, one head at a time (no head mean); showing head " + e.heads[0]);
    if (V.size(mode) || !V.view) V.view = fit(e);
    if (!["lines", "heads", "graph", "text", "qk"].includes(mode)) V.side.replaceChildren();
    V.canvas.style.visibility = mode === "text" ? "hidden" : "";
    V.status.textContent = [e.module || "(map)", V.steps[st.step] === null ? "" : "step " + V.steps[st.step],
      e.row || "sample " + e.sample, V.headName(e, e.heads[V.headIndex(e)]),
      e.graph ? e.edges + " edges" : e.rows + "\u00d7" + e.cols + " (query \u00d7 key)"].filter(Boolean).join(" \u00b7 ");
    try {
      await V.draw[mode](e, token);
    } catch (err) { V.status.textContent = "could not draw: " + err; throw err; }
    if (token === V.seq) {
      if (!root.dataset.ready) root.dataset.readyMs = performance.now().toFixed(1);
      root.dataset.drawn = ++drawn; root.dataset.ready = "1";
      prefetch(e);
      updateTip();
    }
  }
  V.sync = function (keepView) {
    const e = V.cur();
    c.module.value = st.module; c.sample.value = st.sample; c.step.value = st.step; c.stepB.value = st.stepB;
    c.stepName.textContent = " " + (V.steps[st.step] === null ? "" : V.steps[st.step]) + " ";
    V.leadControls(e);
    if (e) {
      c.head.replaceChildren();
      e.heads.forEach(h => { A.el("option", "", c.head, V.headName(e, h)).value = h; });
      c.head.value = e.heads[V.headIndex(e)];
      const v = V.view;
      if (!keepView || !v || v.cpp > Math.max(e.rows / V.H, e.cols / V.W) * 1.0001 || v.x > e.cols || v.y > e.rows) V.view = null;
    }
    V.markOverview();
    return drawMain();
  };
  const redraw = () => V.drawOverview().then(() => V.sync(true));

  // ---- events ---------------------------------------------------------------------
  const on = (node, ev, fn) => node.addEventListener(ev, fn);
  on(c.module, "change", () => { st.module = +c.module.value; V.view = null; V.sync(false); });
  on(c.sample, "change", () => { st.sample = +c.sample.value; V.view = null; redraw(); });
  on(c.head, "change", () => { st.head = c.head.value; V.sync(true); });
  on(c.mean, "click", () => {
    const e = V.cur(); if (!e) return;
    const name = e.heads[V.headIndex(e)];
    st.head = name === "mean" ? (st.lastHead || e.heads[0]) : "mean";
    if (name !== "mean") st.lastHead = name;
    V.sync(true);
  });
  on(c.step, "input", () => { st.step = +c.step.value; redraw(); });
  on(c.diff, "change", () => { st.diff = c.diff.checked; V.sync(true); });
  on(c.stepB, "change", () => { st.stepB = +c.stepB.value; V.sync(true); });
  on(c.view, "change", () => { st.view = c.view.value; V.sync(true); });
  on(c.reduce, "change", () => { st.reduce = c.reduce.value; V.sync(true); });
  on(c.range, "change", () => { st.range = c.range.value; redraw(); });
  on(c.scale, "change", () => { st.scale = c.scale.value; redraw(); });
  on(c.topk, "change", () => V.sync(true));
  on(c.fit, "click", () => { V.view = null; V.sync(false); });
  let drag = null, pending = false, resizing = false;
  const schedule = () => { if (!pending) { pending = true; requestAnimationFrame(() => { pending = false; drawMain(); }); } };
  const zoomable = () => { const m = root.dataset.mode; return m === "matrix" || m === "bars"; };
  const at = ev => { const r = V.canvas.getBoundingClientRect(); return {x: ev.clientX - r.left, y: ev.clientY - r.top}; };
  on(V.canvas, "wheel", ev => {
    const e = V.cur(); if (!e || !zoomable()) return;
    ev.preventDefault();
    const p = at(ev), view = V.view, cx = view.x + p.x * view.cpp, cy = view.y + p.y * view.cpp;
    view.cpp = Math.min(Math.max(e.rows / V.H, e.cols / V.W), Math.max(1 / 48, view.cpp * (ev.deltaY > 0 ? 1.25 : 0.8)));
    view.x = cx - p.x * view.cpp; view.y = e.rows === 1 ? 0 : cy - p.y * view.cpp;
    V.hover = p; schedule();
  }, {passive: false});
  on(V.canvas, "mousedown", ev => { if (zoomable()) drag = [ev.clientX, ev.clientY]; });
  on(window, "mouseup", () => { drag = null; });
  on(V.canvas, "mouseleave", () => { V.hover = null; updateTip(); });
  on(V.canvas, "click", ev => {
    if (root.dataset.mode !== "model") return;
    const p = at(ev), hit = V.modelHit(p.x, p.y);
    if (hit) { st.module = hit[0]; st.head = hit[1]; st.view = "lines"; V.sync(false); }
  });
  on(V.canvas, "mousemove", ev => {
    const e = V.cur(); if (!e || !V.view) return;
    V.hover = at(ev);
    if (drag) {
      V.view.x -= (ev.clientX - drag[0]) * V.view.cpp; if (e.rows > 1) V.view.y -= (ev.clientY - drag[1]) * V.view.cpp;
      drag = [ev.clientX, ev.clientY]; schedule(); return;  // the tip follows after the redraw
    }
    updateTip();
  });
  on(window, "resize", () => {
    if (resizing) return;
    resizing = true;
    requestAnimationFrame(() => {
      resizing = false; V.resized();
      if (V.size(root.dataset.mode)) { V.view = null; drawMain(); }
    });
  });
  redraw().catch(err => { V.status.textContent = "could not draw: " + err; });
};
