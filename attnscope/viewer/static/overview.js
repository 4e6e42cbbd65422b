/* attnscope viewer, overview: layer x head thumbnails (focusable, Enter opens one) and
 * keyboard navigation: left/right between heads, up/down between layers (modules). */
"use strict";
(function (A) {
  A.overview = function (V) {
    const el = A.el, st = V.st;
    V.drawOverview = async function () {
      const box = V.overview;
      box.replaceChildren();
      const table = el("table", "", box);
      const rows = V.modules.map((m, i) => [i, V.find(st.step, i, st.sample)]).filter(r => r[1] && !r[1].graph);
      const maxH = Math.max(0, ...rows.map(r => r[1].heads.length));
      const head = el("tr", "", el("thead", "", table));
      el("th", "", head, "");
      for (let h = 0; h < maxH; h++) {
        const names = rows.map(r => r[1].heads[h]).filter(x => x !== undefined);
        el("th", "", head, names.length ? names[0] : "");
      }
      const tb = el("tbody", "", table);
      for (const [mi, e] of rows) {
        const tr = el("tr", "", tb);
        tr.dataset.module = mi;
        el("th", "as-mod", tr, e.short || e.module || "(map)").title = e.module;
        const u = await V.raw(e.thumb.blob), n = e.thumb.rows * e.thumb.cols;
        e.heads.forEach((name, h) => {
          const c = el("canvas", "as-thumb", el("td", "", tr));
          c.width = e.thumb.cols; c.height = e.thumb.rows; c.tabIndex = 0;
          c.dataset.module = mi; c.dataset.head = name;
          c.title = (e.module || "map") + " \u00b7 " + V.headName(e, name);
          c.setAttribute("aria-label", c.title);
          // thumbnails share the matrix's colour scale (so diffuse heads look diffuse here too)
          const img = new ImageData(c.width, c.height), px = new Uint32Array(img.data.buffer);
          const rg = V.range(e, h), idx = V.colourIndex(rg.lo, rg.hi, "seq"), lut = new Uint32Array(255);
          const top = e.thumb.tops ? e.thumb.tops[h] : rg.hi;
          for (let v = 0; v < 255; v++) lut[v] = A.CMAPS.seq[idx(v / 254 * top)];
          for (let k = 0; k < n; k++) { const v = u[h * n + k]; px[k] = v === 255 ? A.MASKED : lut[v]; }
          c.getContext("2d").putImageData(img, 0, 0);
          const open = () => { st.module = mi; st.head = name; V.sync(true); };
          c.addEventListener("click", open);
          c.addEventListener("keydown", ev => { if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); open(); } });
        });
      }
      V.markOverview();
      V.resized();  // the overview's width decides the matrix's
    };
    V.markOverview = function () {
      const box = V.overview, e = V.cur();
      box.querySelectorAll(".sel").forEach(n => n.classList.remove("sel"));
      const tr = box.querySelector(`tr[data-module="${st.module}"]`);
      if (tr) tr.classList.add("sel");
      if (!e) return null;
      const t = box.querySelector(`canvas[data-module="${st.module}"][data-head="${CSS.escape(e.heads[V.headIndex(e)])}"]`);
      if (t) t.classList.add("sel");
      return t;
    };

    // arrows move between heads (left/right) and modules (up/down), keeping the head
    V.root.tabIndex = 0;
    V.root.addEventListener("keydown", ev => {
      const tag = ev.target.tagName;
      if (tag === "SELECT" || tag === "INPUT" || tag === "BUTTON") return;
      const dh = {ArrowLeft: -1, ArrowRight: 1}[ev.key] || 0, dm = {ArrowUp: -1, ArrowDown: 1}[ev.key] || 0;
      if (!dh && !dm) return;
      const thumbFocused = ev.target.classList.contains("as-thumb");
      if (thumbFocused) { st.module = +ev.target.dataset.module; st.head = ev.target.dataset.head; }
      const e = V.cur(); if (!e) return;
      ev.preventDefault();
      if (dh) {
        const i = V.headIndex(e), j = Math.max(0, Math.min(e.heads.length - 1, i + dh));
        st.head = e.heads[j];
      } else {
        const name = e.heads[V.headIndex(e)];
        let m = st.module + dm;
        while (m >= 0 && m < V.modules.length && !V.find(st.step, m, st.sample)) m += dm;
        if (m < 0 || m >= V.modules.length) return;
        st.module = m; st.head = name; V.view = null;
      }
      V.sync(dh !== 0).then(() => { if (thumbFocused) { const t = V.markOverview(); if (t) t.focus(); } });
    });
  };
})(window.attnscope);
