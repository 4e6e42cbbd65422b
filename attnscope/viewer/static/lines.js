/* attnscope viewer, token-to-token lines (bertviz-like): the head view of one head,
 * all heads overlaid in their own colours, and the model view (every layer x head). */
"use strict";
(function (A) {
  A.lines = function (V) {
    const st = V.st, el = A.el;
    const topk = () => Math.max(1, Math.min(200, +V.controls.topk.value || 3));
    const top = (a, q, cols, k) => {  // the k largest keys of query q, weakest first
      const row = [];
      for (let j = 0; j < cols; j++) { const v = a[q * cols + j]; if (v === v) row.push([v, j]); }
      return row.sort((x, y) => y[0] - x[0]).slice(0, k).reverse();
    };
    // token columns beside the canvas (every n-th label when they cannot all fit)
    function tokens(e, pitch, onQuery) {
      V.side.replaceChildren();
      const left = el("div", "as-ltok", V.side), right = el("div", "as-rtok", V.side);
      const every = Math.max(1, Math.ceil(11 / pitch));
      const put = (box, list, n, hover) => {
        for (let i = 0; i < n; i += every) {
          const d = el("div", "as-tok", box, V.labelOf(list, i) || String(i));
          d.style.top = (10 + (i + 0.5) * pitch - 7) + "px";
          d.title = V.named(box === left ? "query" : "key", list, i);
          if (hover) { d.addEventListener("mouseenter", () => onQuery(i)); d.addEventListener("mouseleave", () => onQuery()); }
        }
      };
      put(left, e.ql, e.rows, true); put(right, e.kl, e.cols, false);
    }
    const pitchOf = e => Math.min(20, (V.H - 20) / Math.max(e.rows, e.cols));
    function stroke(ctx, q, j, pitch, colour, width) {
      ctx.strokeStyle = colour; ctx.lineWidth = width;
      ctx.beginPath(); ctx.moveTo(10, 10 + (q + 0.5) * pitch); ctx.lineTo(V.W - 10, 10 + (j + 0.5) * pitch); ctx.stroke();
    }

    V.draw.lines = async function (e, token) {
      const h = V.headIndex(e), a = await V.full(e.maps[h]);
      if (token !== V.seq) return;
      const k = topk(), pitch = pitchOf(e), rg = V.range(e, h), ctx = V.ctx;
      const colour = V.colourOf(rg.lo, rg.hi, "line"), idx = V.colourIndex(rg.lo, rg.hi, "line");
      const draw = only => {
        ctx.fillStyle = "#ffffff"; ctx.fillRect(0, 0, V.W, V.H);
        for (let q = 0; q < e.rows; q++) {
          if (only !== undefined && only !== q) continue;
          for (const [v, j] of top(a, q, e.cols, k)) stroke(ctx, q, j, pitch, colour(v), 1 + 3 * idx(v) / 255);
        }
      };
      tokens(e, pitch, draw);
      draw();
      V.setLegend(rg.lo, rg.hi, "line", {what: rg.what, note: "top-" + k + " keys per query (hover a query token " +
        "on the left for its lines alone); line colour and width: weight"});
    };

    V.draw.heads = async function (e, token) {  // every head at once, one colour each
      const hs = e.heads.map((n, i) => i).filter(i => e.heads[i] !== "mean");
      const data = await Promise.all(hs.map(i => V.full(e.maps[i])));
      if (token !== V.seq) return;
      const k = topk(), pitch = pitchOf(e), ctx = V.ctx;
      const draw = only => {
        ctx.fillStyle = "#ffffff"; ctx.fillRect(0, 0, V.W, V.H);
        hs.forEach((hi, n) => {
          const rg = V.range(e, hi), idx = V.colourIndex(rg.lo, rg.hi, "line");
          for (let q = 0; q < e.rows; q++) {
            if (only !== undefined && only !== q) continue;
            for (const [v, j] of top(data[n], q, e.cols, k))
              stroke(ctx, q, j, pitch, A.hex(A.HEADS[n % A.HEADS.length], idx(v) / 255), 1.5);
          }
        });
      };
      tokens(e, pitch, draw);
      draw();
      V.legendHeads(hs.map(i => e.heads[i]), {what: V.range(e, hs[0]).what.split(":")[0],
        note: "all " + hs.length + " heads, top-" + k + " keys per query each"});
    };

    // ---- model view: a small head view for every module x head ----------------------
    V.draw.model = async function (e, token) {
      const rows = V.modules.map((m, i) => [i, V.find(st.step, i, st.sample)])
        .filter(r => r[1] && !r[1].graph && r[1].rows > 1 && r[1].rows <= A.LINES_MAX && r[1].cols <= A.LINES_MAX);
      const cols = Math.max(1, ...rows.map(r => r[1].heads.filter(n => n !== "mean").length));
      const data = await Promise.all(rows.map(r => Promise.all(r[1].maps.map(V.full))));
      if (token !== V.seq) return;
      const ctx = V.ctx, cs = Math.floor(Math.min(V.W / cols, V.H / Math.max(1, rows.length)));
      ctx.fillStyle = "#ffffff"; ctx.fillRect(0, 0, V.W, V.H);
      V.rowLabels.replaceChildren(); V.colLabels.replaceChildren(); V.side.replaceChildren();
      rows.forEach(([mi, x], r) => {
        x.heads.forEach((name, h) => {
          if (name === "mean") return;
          const x0 = h * cs, y0 = r * cs, a = data[r][h], n = Math.max(x.rows, x.cols), p = (cs - 6) / n;
          const rg = V.range(x, h), idx = V.colourIndex(rg.lo, rg.hi, "line");
          ctx.strokeStyle = mi === st.module && h === V.headIndex(e) ? "#d62728" : "#ddd";
          ctx.lineWidth = 1; ctx.strokeRect(x0 + 0.5, y0 + 0.5, cs - 1, cs - 1);
          for (let q = 0; q < x.rows; q++) for (const [v, j] of top(a, q, x.cols, 1)) {
            ctx.strokeStyle = A.css(A.CMAPS.line[idx(v)]);
            ctx.beginPath(); ctx.moveTo(x0 + 4, y0 + 3 + (q + 0.5) * p); ctx.lineTo(x0 + cs - 4, y0 + 3 + (j + 0.5) * p); ctx.stroke();
          }
          if (r === 0) el("div", "as-clab", V.colLabels, "head " + name).style.left = (8 + x0 + cs / 2 - 6) + "px";
        });
        const d = el("div", "as-rlab", V.rowLabels, x.short || x.module);
        d.style.top = (8 + y0c(r, cs) - 7) + "px"; d.title = x.module;
      });
      V.shown = {e: e, model: rows, cs: cs};
      const rg0 = V.range(e, V.headIndex(e));
      V.setLegend(rg0.lo, rg0.hi, "line", {what: rg0.what, note: "model view: strongest key of every " +
        "query, one panel per module \u00d7 head (maps up to " + A.LINES_MAX + " tokens); click a panel to open it"});
    };
    const y0c = (r, cs) => r * cs + cs / 2;
    V.modelHit = function (mx, my) {  // [module, head name] under the mouse in the model view
      const s = V.shown; if (!s || !s.model) return null;
      const r = Math.floor(my / s.cs), h = Math.floor(mx / s.cs);
      if (r < 0 || r >= s.model.length) return null;
      const [mi, x] = s.model[r];
      return h >= 0 && h < x.heads.length && x.heads[h] !== "mean" ? [mi, x.heads[h], x] : null;
    };
    V.tips.model = async (mx, my) => { const t = V.modelHit(mx, my); return t ? t[2].module + " \u00b7 head " + t[1] : null; };
  };
})(window.attnscope);
