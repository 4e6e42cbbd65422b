/* attnscope viewer, core: colour tables, float16 decoding, DOM helpers and the blob
 * reader. No network, no eval: data comes from base64 blobs in
 * <script type="application/octet-stream"> elements, inflated with DecompressionStream;
 * every label is set with textContent. The other files add views to this namespace. */
"use strict";
window.attnscope = window.attnscope || {};
(function (A) {
  if (A.core) return;
  A.core = true;
  A.TILE = 512; A.MASKED = 0xffd8d8d8; A.LINES_MAX = 96;
  const VIRIDIS = ["440154", "482878", "3e4989", "31688e", "26828e", "1f9e89", "35b779",
    "6ece58", "b5de2b", "fde725"];
  const DIVERGING = ["2166ac", "4393c3", "92c5de", "d1e5f0", "f7f7f7", "fddbc7", "f4a582",
    "d6604d", "b2182b"];
  // categorical colours of the all-heads view (one per head, repeating after 12)
  A.HEADS = ["1f77b4", "ff7f0e", "2ca02c", "d62728", "9467bd", "8c564b", "e377c2", "7f7f7f",
    "bcbd22", "17becf", "393b79", "ad494a"];

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
  // seq: matrices; div: differences; line: head view lines, edges and text backgrounds
  A.CMAPS = {seq: ramp(VIRIDIS), div: ramp(DIVERGING), line: ramp(["ffffff", "31688e"])};
  A.css = w => "rgb(" + (w & 255) + "," + (w >> 8 & 255) + "," + (w >> 16 & 255) + ")";
  A.hex = (h, a) => "rgba(" + [0, 2, 4].map(i => parseInt(h.slice(i, i + 2), 16)).join(",") +
    "," + a.toFixed(3) + ")";

  let table = null;
  A.f16 = function () {
    if (table) return table;
    table = new Float32Array(65536);
    for (let i = 0; i < 65536; i++) {
      const s = i & 0x8000 ? -1 : 1, e = (i >> 10) & 31, m = i & 1023;
      table[i] = e === 0 ? s * m * 5.960464477539063e-8 : e === 31 ? (m ? NaN : s * Infinity)
        : s * (1 + m / 1024) * Math.pow(2, e - 15);
    }
    return table;
  };

  A.el = function (tag, cls, parent, text) {
    const n = document.createElement(tag);
    if (cls) n.className = cls;
    if (text !== undefined) n.textContent = text;
    if (parent) parent.appendChild(n);
    return n;
  };
  A.fmt = v => (v === undefined || v !== v) ? "masked" :
    Math.abs(v) >= 0.01 || v === 0 ? v.toFixed(4) : v.toExponential(3);

  // Blob access for one page: raw bytes, float16 values and rectangular regions of tiles.
  A.data = function (V, uid) {
    const meta = V.meta;
    // part 0 (what the first view needs) is parsed before this script; part 1 follows
    // it, so it is read once the document has loaded (at once in a notebook)
    const texts = [document.getElementById(uid + "-data0").textContent, null];
    const loaded = document.readyState === "loading" ? new Promise(r =>
      document.addEventListener("DOMContentLoaded", r, {once: true})) : Promise.resolve();
    V.rest = loaded.then(() => { texts[1] = document.getElementById(uid + "-data1").textContent; });
    const cache = new Map(), halfs = new Map();
    function bytes(part, o, n) {
      const bin = atob(texts[part].substr(o, n)), u = new Uint8Array(bin.length);
      for (let k = 0; k < bin.length; k++) u[k] = bin.charCodeAt(k);
      return u;
    }
    function inflate(part, o, n) {
      // part 0 is stored plain and resolves in microtasks: the first view is drawn
      // before the HTML parser goes on to the (large) part 1
      if (part === 0) return Promise.resolve(bytes(0, o, n));
      return V.rest.then(() => {
        const s = new Blob([bytes(1, o, n)]).stream().pipeThrough(new DecompressionStream("deflate"));
        return new Response(s).arrayBuffer();
      }).then(b => new Uint8Array(b));
    }
    V.raw = function (i) {  // blob i -> Promise<Uint8Array>
      if (cache.has(i)) { const p = cache.get(i); cache.delete(i); cache.set(i, p); return p; }
      const p = inflate(meta.blobs[3 * i], meta.blobs[3 * i + 1], meta.blobs[3 * i + 2]);
      cache.set(i, p);
      if (cache.size > 512) cache.delete(cache.keys().next().value);
      return p;
    };
    V.values = function (i) {  // float16 planes -> Promise<Float32Array>
      if (halfs.has(i)) return halfs.get(i);
      const p = V.raw(i).then(u => {
        const n = u.length >> 1, t = A.f16(), out = new Float32Array(n);
        for (let k = 0; k < n; k++) out[k] = t[u[k] | (u[n + k] << 8)];
        return out;
      });
      halfs.set(i, p);
      if (halfs.size > 200) halfs.delete(halfs.keys().next().value);
      return p;
    };
    // rows r0..r1, cols c0..c1 of a level (block means or maxima) as one Float32Array
    V.region = async function (hm, lv, r0, r1, c0, c1, kind) {
      if (lv.qk) return V.qkRegion(hm, r0, r1, c0, c1);  // computed from queries and keys
      const TILE = A.TILE, w = c1 - c0, h = r1 - r0, out = new Float32Array(w * h);
      const blobs = lv[kind] || lv.mean, jobs = [];
      for (let ty = Math.floor(r0 / TILE); ty * TILE < r1; ty++)
        for (let tx = Math.floor(c0 / TILE); tx * TILE < c1; tx++) jobs.push([ty, tx, V.values(blobs[ty * lv.tx + tx])]);
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
    };
    V.full = hm => V.region(hm, hm.levels[0], 0, hm.levels[0].rows, 0, hm.levels[0].cols, "mean");
  };
})(window.attnscope);
