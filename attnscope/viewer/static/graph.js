/* attnscope viewer, graphs: the top-k edges of one head on a circle of nodes (labels,
 * arrowheads towards the target, hover on an edge for its weight) and in a table; one
 * selector per leading axis (time step, node ...) picks which slice is shown. */
"use strict";
(function (A) {
  A.graph = function (V) {
    const st = V.st, el = A.el;
    V.leadIndex = function (e) {  // flat position of the chosen leading-axis indices
      let flat = 0;
      (e.lead || []).forEach((ax, i) => { flat = flat * ax.size + Math.min(ax.size - 1, st.lead[i] || 0); });
      return flat;
    };
    V.leadControls = function (e) {  // rebuilt when the shown entry changes
      const box = V.controls.lead, sig = JSON.stringify(e && e.lead || []);
      if (box.dataset.sig === sig) return;
      box.dataset.sig = sig; box.replaceChildren();
      (e && e.lead || []).forEach((ax, i) => {
        const l = el("label", "", box, ax.name + " ");
        const s = el("select", "as-lead", l);
        s.dataset.axis = ax.name;
        for (let k = 0; k < ax.size; k++) {  // the step's labels where it has them (textContent)
          el("option", "", s, ax.labels ? k + ": " + ax.labels[k] : String(k)).value = k;
        }
        st.lead[i] = Math.min(st.lead[i] || 0, ax.size - 1);
        s.value = st.lead[i];
        s.addEventListener("change", () => { st.lead[i] = +s.value; V.sync(true); });
      });
    };
    const nodeName = (e, i) => V.labelOf(e.nl === undefined ? -1 : e.nl, i) || String(i);

    V.draw.graph = async function (e, token) {
      const h = V.headIndex(e), hm = e.maps[h], E = e.edges, at = V.leadIndex(e) * E;
      let w = (await V.values(hm.blob)).subarray(at, at + E);
      const eiRaw = await V.raw(e.ei), ei = new Int32Array(eiRaw.buffer, eiRaw.byteOffset, eiRaw.length / 4);
      const b = st.diff ? V.other() : null;
      let useB = b && b.graph && b.edges === e.edges && JSON.stringify(b.lead) === JSON.stringify(e.lead);
      if (useB) {  // a difference only over the very same edges
        const r = await V.raw(b.ei);
        useB = r.length === eiRaw.length && r.every((v, i) => v === eiRaw[i]);
      }
      if (st.diff && !useB) V.say("difference: step " + V.steps[st.stepB] + " has other edges; showing step " + V.steps[st.step]);
      if (useB) {
        const wb = (await V.values(b.maps[Math.min(h, b.maps.length - 1)].blob)).subarray(at, at + E);
        w = w.map((v, i) => v - wb[i]);
      }
      if (token !== V.seq) return;
      const W = V.W, H = V.H, ctx = V.ctx, n = Math.max(1, e.nodes);
      const k = Math.min(E, Math.max(1, Math.min(200, +V.controls.topk.value || 3)));
      const mag = v => useB ? Math.abs(v) : v;
      const order = Array.from({length: E}, (_, i) => i).filter(i => w[i] === w[i]).sort((x, y) => mag(w[y]) - mag(w[x])).slice(0, k);
      const rg = V.range(e, h), top = useB ? Math.max(1e-12, ...order.map(i => Math.abs(w[i]))) : rg.hi;
      const lo = useB ? -top : rg.lo, cmap = useB ? "div" : "line";
      const idx = V.colourIndex(lo, top, cmap), colours = A.CMAPS[cmap];
      const R = Math.min(W, H) / 2 - 40, pos = i => [W / 2 + R * Math.cos(2 * Math.PI * i / n), H / 2 + R * Math.sin(2 * Math.PI * i / n)];
      ctx.fillStyle = "#ffffff"; ctx.fillRect(0, 0, W, H);
      const segs = [];
      for (const i of order.slice().reverse()) {  // strongest drawn last, on top
        const [x0, y0] = pos(ei[i]), [x1, y1] = pos(ei[E + i]), c = idx(w[i]);
        const t = useB ? Math.abs(w[i]) / top : c / 255;
        ctx.strokeStyle = ctx.fillStyle = A.css(colours[c]);
        ctx.lineWidth = 1 + 3 * t;
        ctx.beginPath();
        if (ei[i] === ei[E + i]) {  // self loop: a small circle outside the node
          const r = Math.hypot(x0 - W / 2, y0 - H / 2) || 1;
          ctx.arc(x0 + 9 * (x0 - W / 2) / r, y0 + 9 * (y0 - H / 2) / r, 7, 0, 2 * Math.PI);
          ctx.stroke();
          segs.push([x0 + 9 * (x0 - W / 2) / r, y0 + 9 * (y0 - H / 2) / r, null, null, i]);
          continue;
        }
        const len = Math.hypot(x1 - x0, y1 - y0) || 1, ux = (x1 - x0) / len, uy = (y1 - y0) / len;
        const tx = x1 - 5 * ux, ty = y1 - 5 * uy, a = 6 + 3 * t;  // arrowhead stops short of the node
        ctx.moveTo(x0, y0); ctx.lineTo(tx - a * ux, ty - a * uy); ctx.stroke();
        ctx.beginPath(); ctx.moveTo(tx, ty);
        ctx.lineTo(tx - a * ux - a * 0.5 * uy, ty - a * uy + a * 0.5 * ux);
        ctx.lineTo(tx - a * ux + a * 0.5 * uy, ty - a * uy - a * 0.5 * ux);
        ctx.closePath(); ctx.fill();
        segs.push([x0, y0, x1, y1, i]);
      }
      ctx.fillStyle = "#888"; ctx.font = "10px system-ui, sans-serif"; ctx.textBaseline = "middle";
      for (let i = 0; i < n && n <= 2000; i++) {
        const [x, y] = pos(i);
        ctx.beginPath(); ctx.arc(x, y, 3, 0, 2 * Math.PI); ctx.fill();
        if (n <= 128) {  // node names outside the circle
          const c = Math.cos(2 * Math.PI * i / n), s = Math.sin(2 * Math.PI * i / n);
          ctx.textAlign = c < -0.2 ? "right" : c > 0.2 ? "left" : "center";
          ctx.fillStyle = "#333"; ctx.fillText(nodeName(e, i), x + 12 * c, y + 12 * s); ctx.fillStyle = "#888";
        }
      }
      V.side.replaceChildren();
      const table = el("table", "as-edges", V.side), hr = el("tr", "", table);
      ["source", "target", useB ? "difference" : "weight"].forEach(t => el("th", "", hr, t));
      for (const i of order) {
        const tr = el("tr", "", table);
        el("td", "", tr, nodeName(e, ei[i])); el("td", "", tr, nodeName(e, ei[E + i])); el("td", "", tr, A.fmt(w[i]));
      }
      V.shown = {e: e, segs: segs, w: w, ei: ei, useB: useB};
      const where = (e.lead || []).map((ax, i) => ax.name + " " + (st.lead[i] || 0)).join(", ");
      V.setLegend(lo, top, cmap, {what: useB ? "difference " + V.steps[st.step] + " \u2212 " + V.steps[st.stepB] : rg.what,
        note: "top " + order.length + " of " + E + " edges (source \u2192 target, arrow at the target)" +
          (where ? " at " + where : "") + "; grey dots: nodes; no line: no edge or not in the top " + order.length});
    };
    V.tips.graph = async function (mx, my) {  // the edge nearest the mouse (within 6 px)
      const s = V.shown; if (!s || !s.segs || s.e !== V.cur()) return null;
      let best = null, bd = 6;
      for (const [x0, y0, x1, y1, i] of s.segs) {
        let d;
        if (x1 === null) d = Math.abs(Math.hypot(mx - x0, my - y0) - 7);
        else {
          const dx = x1 - x0, dy = y1 - y0, t = Math.max(0, Math.min(1, ((mx - x0) * dx + (my - y0) * dy) / (dx * dx + dy * dy || 1)));
          d = Math.hypot(mx - x0 - t * dx, my - y0 - t * dy);
        }
        if (d <= bd) { bd = d; best = i; }
      }
      if (best === null) return null;
      const E = s.e.edges;
      return "edge " + best + ": " + nodeName(s.e, s.ei[best]) + " \u2192 " + nodeName(s.e, s.ei[E + best]) + ": " +
        A.fmt(s.w[best]) + (s.useB ? " (difference)" : "");
    };
  };
})(window.attnscope);
