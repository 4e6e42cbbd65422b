/* attnscope viewer, layout: the control bar, the matrix area sized to the window
 * (square, refitted on resize), labels that are culled only when they cannot fit. */
"use strict";
(function (A) {
  const PAD = 8;  // label boxes reach past the canvas so first/last labels are whole
  A.layout = function (V) {
    const el = A.el, root = V.root, st = V.st;
    el("div", "as-title", root, V.meta.title);
    const bar = el("div", "as-bar", root);
    const control = (label, node, parent) => {
      const l = el("label", "", parent || bar, label + " "); l.appendChild(node); return node; };
    const options = (sel, items) => items.forEach(([v, t]) => { el("option", "", sel, t).value = v; });
    const c = V.controls = {};
    c.module = control("module", el("select", "as-module"));
    V.modules.forEach((m, i) => { el("option", "", c.module, m || "(map)").value = i; });
    // folded entries (epochs or channels in the batch axis) count rows, not samples
    const folded = V.entries.some(e => e.row && e.row.startsWith("row "));
    c.sample = control(folded ? "sample / row" : "sample", el("select", "as-sample"));
    V.samples.forEach((s, i) => { el("option", "", c.sample, String(s)).value = i; });
    c.head = control("head", el("select", "as-head"));
    c.mean = el("button", "as-mean", bar, "mean \u21c4 head");
    c.lead = el("span", "as-leadbox", bar);  // one selector per leading axis (graphs)
    const stepBox = el("span", "as-stepbox", bar);
    c.step = control("step", el("input", "as-step"), stepBox);
    c.step.type = "range"; c.step.min = 0; c.step.max = V.steps.length - 1; c.step.value = st.step;
    c.stepName = el("span", "as-stepname", stepBox);
    c.diff = control("difference", el("input", "as-diff"), stepBox);
    c.diff.type = "checkbox";
    c.stepB = control(" minus", el("select", "as-stepb"), stepBox);
    V.steps.forEach((s, i) => { el("option", "", c.stepB, String(s)).value = i; });
    if (V.steps.length < 2) stepBox.style.display = "none";
    c.view = control("view", el("select", "as-view"));
    c.reduce = control("blocks", el("select", "as-reduce"));
    options(c.reduce, [["mean", "mean"], ["max", "max"]]);
    c.range = control("scale", el("select", "as-range"));
    options(c.range, [["model", "per model"], ["layer", "per layer"], ["head", "per head"], ["fixed", "fixed 0\u20261"]]);
    c.range.value = st.range;
    c.scale = control("colour", el("select", "as-scale"));
    options(c.scale, [["linear", "linear"], ["sqrt", "sqrt"], ["log", "log"]]);
    c.topk = control("top-k", el("input", "as-topk"));
    c.topk.type = "number"; c.topk.min = 1; c.topk.max = 200; c.topk.value = st.topk;
    c.fit = el("button", "as-fit", bar, "fit");

    const body = el("div", "as-body", root);
    V.overview = el("div", "as-overview", body);
    const main = V.main = el("div", "as-main", body);
    V.colLabels = el("div", "as-cols", main); V.rowLabels = el("div", "as-rows", main);
    V.canvas = el("canvas", "as-canvas", main);
    V.ctx = V.canvas.getContext("2d");
    V.side = el("div", "as-side", main);
    V.legend = el("div", "as-legend", main);
    V.note = el("div", "as-note", main);  // what a view cannot show, said on the page
    V.tip = el("div", "as-tip", root);
    V.status = el("div", "as-status", root);
    V.W = V.H = 0;

    // the canvas: a square that fills the free width and the window's height
    let measured = null;  // layout is read only when the mode's margin or the window changed
    V.resized = () => { measured = null; };
    V.size = function (mode) {
      const right = {lines: 150, heads: 150, graph: 240}[mode] || 16;
      if (measured === right) return false;
      measured = right;
      const free = root.clientWidth - V.overview.offsetWidth - 16 - 120 - right;
      const tall = window.innerHeight - 96 - 150;
      const s = Math.max(240, Math.min(1400, Math.floor(Math.min(free, tall))));
      main.style.paddingRight = right + "px";
      if (s === V.W) return false;
      V.W = V.H = s;
      V.canvas.width = V.canvas.height = s;
      V.canvas.style.width = V.canvas.style.height = s + "px";
      Object.assign(V.rowLabels.style, {top: 96 - PAD + "px", height: s + 2 * PAD + "px"});
      Object.assign(V.colLabels.style, {left: 120 - PAD + "px", width: s + 2 * PAD + "px"});
      Object.assign(V.side.style, {width: s + "px", height: s + "px"});
      V.legend.style.maxWidth = V.note.style.maxWidth = s + right + "px";
      return true;
    };

    V.labelOf = (list, i) => list >= 0 ? V.labels[list][i] : "";
    V.named = (what, list, i) => {  // "query 3 “cat”", or "query 3" without labels
      const t = V.labelOf(list, i);
      return what + " " + i + (t === "" || t === String(i) ? "" : " \u201c" + t + "\u201d");
    };
    // axis labels of cells start..start+len*cpp at px pixels each; every n-th when crowded
    V.drawLabels = function (e, view) {
      V.rowLabels.replaceChildren(); V.colLabels.replaceChildren();
      const px = 1 / view.cpp;
      const put = (box, list, n, start, len, vertical) => {
        const every = Math.max(1, Math.ceil((vertical ? 11 : 11) / px));
        const first = Math.max(0, Math.floor(start)), last = Math.min(n, Math.ceil(start + len * view.cpp));
        for (let i = first - first % every; i < last; i += every) {
          if (i < first) continue;
          const d = el("div", vertical ? "as-clab" : "as-rlab", box, V.labelOf(list, i) || String(i));
          const pos = PAD + (i + 0.5 - start) * px;
          if (vertical) d.style.left = (pos - 6) + "px"; else d.style.top = (pos - 7) + "px";
        }
      };
      if (e.rows > 1) put(V.rowLabels, e.ql, e.rows, view.y, V.H, false);
      put(V.colLabels, e.kl, e.cols, view.x, V.W, true);
    };
  };
})(window.attnscope);
