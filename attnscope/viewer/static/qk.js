/* attnscope viewer, query/key view (like bertviz's neuron view, from stored queries and
 * keys, no model): for one query, every key's per-dimension products q_i * k_j, which
 * sum (times the scale) to the score behind its attention weight. */
"use strict";
(function (A) {
  A.qk = function (V) {
    const st = V.st, el = A.el;
    const box = el("label", "as-qkbox", V.controls.lead.parentNode, "query ");
    const pick = el("select", "as-qkquery", box);
    box.style.display = "none";
    pick.addEventListener("change", () => { st.focus = +pick.value; V.sync(true); });
    V.qkControls = function (e, on) {
      box.style.display = on ? "" : "none";
      if (!on || pick.dataset.entry === e.module + "/" + e.rows + "/" + e.ql) return;
      pick.dataset.entry = e.module + "/" + e.rows + "/" + e.ql;
      pick.replaceChildren();
      for (let i = 0; i < e.rows; i++) el("option", "", pick, V.named("", e.ql, i).trim()).value = i;
    };

    V.draw.qk = async function (e, token) {
      let h = V.headIndex(e);
      if (e.heads[h] === "mean") {
        h = 0;
        V.say("the query/key view shows one head (a mean of heads has no single query and key); showing head " + e.heads[0]);
      }
      if (st.focus === null || st.focus >= e.rows) st.focus = e.rows - 1;
      const qi = st.focus, d = e.qk.dim;
      const [qs, ks, p] = await Promise.all([V.values(e.qk.q[h]), V.values(e.qk.k[h]),
        V.region(e.maps[h], e.maps[h].levels[0], qi, qi + 1, 0, e.cols, "mean")]);
      if (token !== V.seq) return;
      pick.value = qi;
      const q = qs.subarray(qi * d, (qi + 1) * d), n = e.cols;
      const prod = new Float32Array(n * d), score = new Float32Array(n);
      let m = 0;
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let i = 0; i < d; i++) { const v = q[i] * ks[j * d + i]; prod[j * d + i] = v; s += v; if (Math.abs(v) > m) m = Math.abs(v); }
        score[j] = s * e.qk.scale;
      }
      const ctx = V.ctx, W = V.W, H = V.H, ch = Math.min(20, (H - 8) / (n + 2)), cw = (W - 50) / d;
      const div = V.colourIndex(-m, m, "div"), qm = Math.max(1e-12, ...Array.from(q, Math.abs));
      const line = V.colourIndex(0, 1, "line");
      ctx.fillStyle = "#ffffff"; ctx.fillRect(0, 0, W, H);
      const cell = (x, y, w, c) => { ctx.fillStyle = A.css(c); ctx.fillRect(x, y, Math.ceil(w), Math.ceil(ch) - 1); };
      for (let i = 0; i < d; i++) cell(i * cw, 0, cw, A.CMAPS.div[Math.round(127.5 + 127.5 * q[i] / qm)]);
      for (let j = 0; j < n; j++) {
        const y = (j + 2) * ch;
        for (let i = 0; i < d; i++) cell(i * cw, y, cw, A.CMAPS.div[div(prod[j * d + i])]);
        cell(W - 40, y, 40, p[j] === p[j] ? A.CMAPS.line[line(p[j])] : A.MASKED);
      }
      V.rowLabels.replaceChildren(); V.colLabels.replaceChildren();
      const label = (text, y) => { const l = el("div", "as-rlab", V.rowLabels, text); l.style.top = (8 + y + ch / 2 - 7) + "px"; };
      label(V.named("query", e.ql, qi), 0);
      const every = Math.max(1, Math.ceil(11 / ch));
      for (let j = 0; j < n; j += every) label(V.labelOf(e.kl, j) || String(j), (j + 2) * ch);
      V.shown = {e: e, qk: {q: q, k: ks, prod: prod, score: score, p: p, ch: ch, cw: cw, d: d, qi: qi}};
      V.setLegend(-m, m, "div", {what: "q_i \u00d7 k_i per dimension, \u00b1 largest",
        note: "top row: query vector; each row below: one key's products, which sum (\u00d7 scale " +
          A.fmt(e.qk.scale) + ") to its score; right column: the attention weight (0\u20261, white to blue)"});
    };
    V.tips.qk = async function (mx, my) {
      const s = V.shown; if (!s || !s.qk || s.e !== V.cur()) return null;
      const t = s.qk, e = s.e, j = Math.floor(my / t.ch) - 2, i = Math.floor(mx / t.cw);
      if (j < 0 || j >= e.cols) return null;
      const pair = V.named("query", e.ql, t.qi) + " \u2192 " + V.named("key", e.kl, j);
      const tail = "score \u03a3 q\u00b7k \u00d7 scale = " + A.fmt(t.score[j]) + " \u2192 weight " + A.fmt(t.p[j]);
      if (mx >= V.W - 40) return pair + ": " + tail;
      if (i < 0 || i >= t.d) return null;
      return pair + ", dim " + i + ": q " + A.fmt(t.q[i]) + " \u00d7 k " + A.fmt(t.k[j * t.d + i]) + " = " +
        A.fmt(t.prod[j * t.d + i]) + "; " + tail;
    };
  };
})(window.attnscope);
