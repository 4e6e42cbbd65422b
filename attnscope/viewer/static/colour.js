/* attnscope viewer, colour: value ranges (per head, per layer, per model, fixed 0..1),
 * value -> colour under linear/sqrt/log, painting a block of values, and the legend
 * that states all of it next to the matrix. */
"use strict";
(function (A) {
  A.colour = function (V) {
    const st = V.st, el = A.el;
    const span = maps => maps.reduce((r, m) => [Math.min(r[0], m.vmin), Math.max(r[1], m.vmax)], [0, 0]);
    // the colour range of head position h of entry e under the chosen scale
    V.range = function (e, h) {
      let r, what;
      if (st.range === "fixed") { r = [0, 1]; what = "fixed 0\u20261"; }
      else if (st.range === "head") { r = span([e.maps[h]]); what = "per head: this head's max"; }
      else if (st.range === "layer") { r = span(e.maps); what = "per layer: max of this module's " + e.maps.length + " maps"; }
      else {
        const same = V.entries.filter(x => x.step === e.step && x.sample === e.sample && !!x.graph === !!e.graph);
        r = span([].concat(...same.map(x => x.maps)));
        what = "per model: max of " + same.length + " module" + (same.length > 1 ? "s" : "");
      }
      return {lo: r[0], hi: r[1] > r[0] ? r[1] : r[0] + 1, what: what};
    };
    V.colourIndex = function (lo, hi, cmap) {  // value -> 0..255 under the chosen scale
      const clamp = t => Math.max(0, Math.min(255, Math.round(t * 255)));
      if (cmap === "div") {  // symmetric around 0; sqrt and log both stretch small changes
        const m = Math.max(Math.abs(lo), Math.abs(hi)) || 1, sq = st.scale !== "linear";
        return v => { const t = v / m; return clamp(0.5 + 0.5 * (sq ? Math.sign(t) * Math.sqrt(Math.abs(t)) : t)); };
      }
      const w = (hi - lo) || 1;
      if (st.scale === "sqrt") return v => clamp(Math.sqrt(Math.max(0, (v - lo) / w)));
      if (st.scale === "log") {
        const top = Math.log10(hi || 1);
        return v => clamp(v > 0 ? (Math.log10(v) - top + 4) / 4 : 0);
      }
      return v => clamp((v - lo) / w);
    };
    V.colourOf = function (lo, hi, cmap) {  // value -> CSS colour
      const idx = V.colourIndex(lo, hi, cmap), c = A.CMAPS[cmap];
      return v => v !== v ? A.css(A.MASKED) : A.css(c[idx(v)]);
    };
    const off = document.createElement("canvas"), offCtx = off.getContext("2d");
    V.off = off;
    V.paint = function (vals, w, h, lo, hi, cmap) {  // values -> the offscreen canvas
      if (off.width !== w || off.height !== h) { off.width = w; off.height = h; }
      const img = new ImageData(w, h), px = new Uint32Array(img.data.buffer), c = A.CMAPS[cmap];
      if (cmap === "seq" && st.scale === "linear") {  // the common case, without a call per cell
        const f = 255 / ((hi - lo) || 1);
        for (let k = 0; k < vals.length; k++) {
          const v = vals[k];
          if (v !== v) { px[k] = A.MASKED; continue; }
          const i = ((v - lo) * f + 0.5) | 0;
          px[k] = c[i < 0 ? 0 : i > 255 ? 255 : i];
        }
      } else {
        const idx = V.colourIndex(lo, hi, cmap);
        for (let k = 0; k < vals.length; k++) { const v = vals[k]; px[k] = v !== v ? A.MASKED : c[idx(v)]; }
      }
      offCtx.putImageData(img, 0, 0);
    };

    // ---- legend: the ramp (or head colours), the range and how it was chosen, grey ----
    const legend = V.legend, bar = el("canvas", "as-lbar", legend);
    bar.width = 200; bar.height = 10;
    const range = el("span", "as-lrange", legend), heads = el("span", "as-lheads", legend);
    const grey = el("span", "as-lgrey", legend), note = el("div", "as-lnote", legend);
    el("i", "as-swatch", grey).style.background = A.css(A.MASKED);
    const greyText = el("span", "", grey);
    V.setLegend = function (lo, hi, cmap, o) {  // o: {what, note, grey}
      bar.style.display = ""; heads.replaceChildren();
      if (bar.dataset.cmap !== cmap) {  // the bar changes only with the colour map
        const img = new ImageData(200, 10), px = new Uint32Array(img.data.buffer), c = A.CMAPS[cmap];
        for (let k = 0; k < px.length; k++) px[k] = c[Math.round((k % 200) / 199 * 255)];
        bar.getContext("2d").putImageData(img, 0, 0);
        bar.dataset.cmap = cmap;
      }
      const low = st.scale === "log" && cmap !== "div" ? hi / 1e4 : lo;
      range.textContent = " " + A.fmt(low) + " \u2026 " + A.fmt(hi) + "  \u00b7 colour: " +
        (o.what || "") + (cmap === "div" ? "" : ", " + st.scale) + " ";
      grey.style.display = o.grey ? "" : "none";
      greyText.textContent = " " + (o.grey || "");
      note.textContent = o.note || "";
    };
    V.legendHeads = function (names, o) {  // the all-heads view: one colour per head
      bar.style.display = "none"; heads.replaceChildren();
      names.forEach((n, i) => {
        const s = el("span", "as-lhead", heads);
        el("i", "as-swatch", s).style.background = "#" + A.HEADS[i % A.HEADS.length];
        el("span", "", s, " head " + n + " ");
      });
      range.textContent = " line opacity: weight, " + (o.what || "");
      grey.style.display = "none";
      note.textContent = o.note || "";
    };
  };
})(window.attnscope);
