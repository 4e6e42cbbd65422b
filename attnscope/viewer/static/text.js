/* attnscope viewer, tokens as text (circuitsvis-like): the tokens in reading order,
 * each coloured by the attention the focused query token pays to it. Hover a token to
 * look from it, click to keep it focused. */
"use strict";
(function (A) {
  A.text = function (V) {
    const st = V.st, el = A.el;
    V.draw.text = async function (e, token) {
      const h = V.headIndex(e), hm = e.maps[h], rg = V.range(e, h);
      const idx = V.colourIndex(rg.lo, rg.hi, "line"), c = A.CMAPS.line;
      if (st.focus === null || st.focus >= e.rows) st.focus = e.rows - 1;
      const row = q => V.region(hm, hm.levels[0], q, q + 1, 0, e.cols, "mean");
      const first = await row(st.focus);
      if (token !== V.seq) return;
      V.ctx.fillStyle = "#ffffff"; V.ctx.fillRect(0, 0, V.W, V.H);
      V.side.replaceChildren();
      const box = el("div", "as-text", V.side), self = e.rows === e.cols && e.ql === e.kl;
      const info = el("div", "as-focus", box);
      if (!self) el("div", "as-textlab", box, "queries (hover or click one to look from it):");
      const qs = el("div", "as-tokens as-queries", box);
      const ks = self ? qs : (el("div", "as-textlab", box, "keys, coloured by its attention:"), el("div", "as-tokens as-keys", box));
      const qSpans = [], kSpans = [];
      for (let i = 0; i < e.rows; i++) {
        const s = el("span", "as-word", qs, V.labelOf(e.ql, i) || String(i));
        s.dataset.q = i; qSpans.push(s);
        s.addEventListener("mouseenter", () => show(i));
        s.addEventListener("mouseleave", () => show(st.focus));
        s.addEventListener("click", () => { st.focus = i; show(i); });
      }
      if (!self) for (let j = 0; j < e.cols; j++) { const s = el("span", "as-word", ks, V.labelOf(e.kl, j) || String(j)); kSpans.push(s); }
      const keys = self ? qSpans : kSpans;
      let want = 0;
      async function show(q, vals) {
        const mine = ++want, a = vals || await row(q);
        if (mine !== want) return;
        let best = 0;
        keys.forEach((s, j) => {
          const v = a[j], i = v === v ? idx(v) : -1;
          s.style.background = i < 0 ? A.css(A.MASKED) : A.css(c[i]);
          s.style.color = i > 150 ? "#fff" : "#222";
          s.title = V.named("key", e.kl, j) + ": " + A.fmt(v);
          s.dataset.value = v === v ? v : "";
          if (v === v && !(a[best] >= v)) best = j;
        });
        qSpans.forEach((s, i) => s.classList.toggle("as-focused", i === q));
        info.textContent = "attention from " + V.named("query", e.ql, q) + (q === st.focus ? " (focused)" : "") +
          " \u00b7 strongest: " + V.named("key", e.kl, best) + " " + A.fmt(a[best]);
      }
      await show(st.focus, first);
      V.setLegend(rg.lo, rg.hi, "line", {what: rg.what, grey: "grey: masked", note: "background: attention " +
        "from the focused query token to each token"});
    };
  };
})(window.attnscope);
