/* attnscope viewer, matrix and bars: one canvas pixel per shown cell (or block of a
 * coarse level), and the hover text of whatever the pixel under the mouse shows. */
"use strict";
(function (A) {
  A.matrix = function (V) {
    const st = V.st;
    function level(hm) {  // coarsest level whose blocks span at most ~1.5 screen pixels
      let best = hm.levels[0];
      for (const lv of hm.levels) if (Math.max(lv.fy, lv.fx) <= 1.5 * V.view.cpp && lv.fy >= best.fy) best = lv;
      // computed cells (queries and keys) only from one cell per pixel in: else the finest embedded level
      if (best.qk && V.view.cpp > 1 && hm.levels.length > 1) best = hm.levels[1];
      return best;  // block means are linear, so coarse levels also serve the difference
    }
    V.level = level;
    V.sameShape = (a, b) => b && !b.graph && b.rows === a.rows && b.cols === a.cols;

    V.draw.matrix = async function (e, token) {
      const view = V.view, W = V.W, H = V.H, ctx = V.ctx;
      const h = V.headIndex(e), hm = e.maps[h], lv = level(hm);
      const b = st.diff ? V.other() : null, useB = st.diff && V.sameShape(e, b);
      if (st.diff && !useB) V.say("difference: step " + V.steps[st.stepB] + " has no map of this shape; showing step " + V.steps[st.step]);
      const r0 = Math.max(0, Math.floor(view.y / lv.fy)), r1 = Math.min(lv.rows, Math.ceil((view.y + H * view.cpp) / lv.fy));
      const c0 = Math.max(0, Math.floor(view.x / lv.fx)), c1 = Math.min(lv.cols, Math.ceil((view.x + W * view.cpp) / lv.fx));
      if (r1 <= r0 || c1 <= c0) { ctx.fillStyle = "#f4f4f4"; ctx.fillRect(0, 0, W, H); return; }
      const kind = useB ? "mean" : st.reduce;
      const a = await V.region(hm, lv, r0, r1, c0, c1, kind);
      let {lo, hi, what} = V.range(e, h), cmap = "seq", note = "";
      const hb = useB ? b.maps[Math.min(h, b.maps.length - 1)] : null, lb = hb ? hb.levels[hm.levels.indexOf(lv)] : null;
      if (useB) {
        const bv = await V.region(hb, lb, r0, r1, c0, c1, "mean");
        let m = 0;
        for (let k = 0; k < a.length; k++) { a[k] -= bv[k]; if (Math.abs(a[k]) > m) m = Math.abs(a[k]); }
        lo = -m || -1e-6; hi = m || 1e-6; cmap = "div";
        what = "difference " + V.steps[st.step] + " \u2212 " + V.steps[st.stepB] + ", \u00b1 largest shown";
      }
      if (token !== V.seq) return;
      ctx.fillStyle = "#f4f4f4"; ctx.fillRect(0, 0, W, H);
      V.paint(a, c1 - c0, r1 - r0, lo, hi, cmap);
      ctx.imageSmoothingEnabled = false;
      const dx = (c0 * lv.fx - view.x) / view.cpp, dy = (r0 * lv.fy - view.y) / view.cpp;
      const dw = Math.min((c1 - c0) * lv.fx, e.cols - c0 * lv.fx) / view.cpp;
      const dh = Math.min((r1 - r0) * lv.fy, e.rows - r0 * lv.fy) / view.cpp;
      ctx.drawImage(V.off, 0, 0, c1 - c0, r1 - r0, dx, dy, dw, dh);
      const li = hm.levels.indexOf(lv);
      if (li) note = "level " + li + ": each pixel is the " + kind + " of a " + lv.fy + "\u00d7" + lv.fx + " block (block " + kind + ")";
      if (hm.levels[0].qk) note += li ? "; zoom in to one cell per pixel for single cells, computed from queries and keys"
        : "cells computed in the page from queries and keys: exp(q\u00b7k \u00d7 scale \u2212 row log-sum-exp)";
      V.setLegend(lo, hi, cmap, {what: what, note: note, grey: "grey: masked (causal, padding)"});
      V.shown = {e: e, hm: hm, lv: lv, kind: kind, hb: hb, lb: lb};
      V.drawLabels(e, view);
    };

    // what the pixel at canvas (mx, my) shows: one stored value, or one block's mean/max
    V.tips.matrix = async function (mx, my) {
      const s = V.shown, view = V.view;
      if (!s || s.e !== V.cur()) return null;
      const {e, hm, lv, kind} = s;
      const y = view.y + my * view.cpp, x = view.x + mx * view.cpp;
      const r = Math.floor(y / lv.fy), c = Math.floor(x / lv.fx);
      if (r < 0 || c < 0 || r >= lv.rows || c >= lv.cols || y >= e.rows || x >= e.cols) return null;
      const v = (await V.region(hm, lv, r, r + 1, c, c + 1, kind))[0];
      let line;
      if (lv.fy === 1 && lv.fx === 1) {
        line = V.named("query", e.ql, r) + " \u2192 " + V.named("key", e.kl, c) + ": " + A.fmt(v);
      } else {
        const q1 = Math.min(e.rows, (r + 1) * lv.fy) - 1, k1 = Math.min(e.cols, (c + 1) * lv.fx) - 1;
        line = "block " + kind + " of queries " + r * lv.fy + "\u2013" + q1 + " \u00d7 keys " + c * lv.fx + "\u2013" + k1 +
          " (" + lv.fy + "\u00d7" + lv.fx + " cells, as the pixel shows): " + A.fmt(v);
      }
      if (s.hb) {
        const w = (await V.region(s.hb, s.lb, r, r + 1, c, c + 1, "mean"))[0];
        line += " \u2212 " + A.fmt(w) + " = " + A.fmt(v - w);
      }
      return line;
    };

    // ---- 1-D attention: bars, with the signal drawn under them ----------------------
    V.draw.bars = async function (e, token) {
      const view = V.view, W = V.W, H = V.H, ctx = V.ctx, h = V.headIndex(e), hm = e.maps[h];
      let a = await V.region(hm, hm.levels[0], 0, 1, 0, e.cols, "mean");
      const b = st.diff ? V.other() : null, useB = st.diff && V.sameShape(e, b);
      if (st.diff && !useB) V.say("difference: step " + V.steps[st.stepB] + " has no map of this shape");
      if (useB) {
        const hb = b.maps[Math.min(h, b.maps.length - 1)];
        const bv = await V.region(hb, hb.levels[0], 0, 1, 0, e.cols, "mean");
        a = a.map((v, k) => v - bv[k]);
      }
      if (token !== V.seq) return;
      ctx.fillStyle = "#ffffff"; ctx.fillRect(0, 0, W, H);
      const rg = V.range(e, h), top = useB ? Math.max(1e-12, ...a.filter(v => v === v).map(Math.abs)) : rg.hi;
      const base = useB ? H / 2 : H - 20, span = useB ? H / 2 - 20 : H - 40;
      if (V.meta.signal && V.meta.signal.n === e.cols) {
        const sig = await V.values(V.meta.signal.blob), s0 = V.meta.signal.min, s1 = V.meta.signal.max;
        ctx.strokeStyle = "#999"; ctx.beginPath();
        for (let x = 0; x < W; x++) {
          const k = Math.floor(view.x + x * view.cpp);
          if (k >= 0 && k < e.cols) ctx.lineTo(x, H - 20 - (sig[k] - s0) / ((s1 - s0) || 1) * (H - 40));
        }
        ctx.stroke();
      }
      for (let x = 0; x < W; x++) {
        const k0 = Math.floor(view.x + x * view.cpp), k1 = Math.max(k0 + 1, Math.floor(view.x + (x + 1) * view.cpp));
        if (k0 >= e.cols || k1 <= 0) continue;
        let v = 0;
        for (let k = Math.max(0, k0); k < Math.min(e.cols, k1); k++) if (Math.abs(a[k]) > Math.abs(v)) v = a[k];
        ctx.fillStyle = v < 0 ? "#2166ac" : useB ? "#b2182b" : "#31688e";
        const hh = Math.min(1, v / top) * span;
        ctx.fillRect(x, base - Math.max(hh, 0), 1, Math.abs(hh));
      }
      V.setLegend(useB ? -top : 0, top, useB ? "div" : "seq", {what: useB ? "bar height: difference " +
        V.steps[st.step] + " \u2212 " + V.steps[st.stepB] : "bar height, " + rg.what, note: view.cpp > 1 ?
        "each bar is the largest of the keys under its pixel" : ""});
      V.shown = {e: e, bars: a};
      V.drawLabels({rows: 1, cols: e.cols, kl: e.kl, ql: -1}, view);
    };
    V.tips.bars = async function (mx) {
      const s = V.shown, view = V.view;
      if (!s || !s.bars || s.e !== V.cur()) return null;
      const e = s.e, k0 = Math.floor(view.x + mx * view.cpp), k1 = Math.max(k0 + 1, Math.floor(view.x + (mx + 1) * view.cpp));
      if (k0 < 0 || k0 >= e.cols) return null;
      if (k1 - k0 === 1) return V.named("key", e.kl, k0) + ": " + A.fmt(s.bars[k0]);
      let best = k0;
      for (let k = k0; k < Math.min(e.cols, k1); k++) if (Math.abs(s.bars[k]) > Math.abs(s.bars[best])) best = k;
      return "keys " + k0 + "\u2013" + (Math.min(e.cols, k1) - 1) + ", largest (the bar): " + V.named("key", e.kl, best) + ": " + A.fmt(s.bars[best]);
    };
  };
})(window.attnscope);
