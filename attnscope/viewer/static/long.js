/* attnscope viewer, long maps from queries and keys: a map whose full-resolution level
 * is marked "qk" embeds no cells; its cells are computed here, only where shown, as
 * exp(q . k * scale - lse[row]) from the embedded float16 queries and keys and each
 * row's log-sum-exp (computed in Python over the same float16 values). */
"use strict";
(function (A) {
  A.long = function (V) {
    const inputs = new Map();
    function load(hm) {  // decoded once per map, kept while the page is open
      if (!inputs.has(hm)) {
        const x = hm.qk;
        inputs.set(hm, Promise.all([V.values(x.q), V.values(x.k), V.raw(x.lse)]).then(
          ([q, k, u]) => ({q: q, k: k, lse: new Float32Array(u.slice().buffer)})));
      }
      return inputs.get(hm);
    }
    // rows r0..r1, cols c0..c1 of the full-resolution level; causal cells are NaN (masked)
    V.qkRegion = async function (hm, r0, r1, c0, c1) {
      const {q, k, lse} = await load(hm), x = hm.qk, d = x.dim, s = x.scale, w = c1 - c0;
      const out = new Float32Array(w * (r1 - r0)).fill(NaN);
      for (let r = r0; r < r1; r++) {
        const qo = r * d, o = (r - r0) * w - c0, top = x.causal ? Math.min(c1, r + 1) : c1, l = lse[r];
        for (let c = c0; c < top; c++) {
          const ko = c * d;
          let acc = 0;
          for (let i = 0; i < d; i++) acc += q[qo + i] * k[ko + i];
          out[o + c] = Math.exp(acc * s - l);
        }
      }
      return out;
    };
    // for checks and benchmarks: one TILE x TILE block of the shown map, computed as the
    // matrix computes it: {ms, row: its first row (masked cells as null)}
    V.root.attnscopeTile = async function (r0, c0) {
      const e = V.cur(), hm = e.maps[V.headIndex(e)], T = A.TILE;
      if (!hm.levels[0].qk) return null;
      await load(hm);
      const t = performance.now(), c1 = Math.min(e.cols, c0 + T);
      const out = await V.qkRegion(hm, r0, Math.min(e.rows, r0 + T), c0, c1);
      const ms = performance.now() - t;
      return {ms: ms, row: Array.from(out.subarray(0, c1 - c0), v => v === v ? v : null)};
    };
  };
})(window.attnscope);
