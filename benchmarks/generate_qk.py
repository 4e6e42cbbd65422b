"""Cost of capturing a generation into a q/k store, and its size, on a random small Llama
(4 layers, hidden 256, 8 query heads over 2 key heads, head dim 32; no download).

Timed variants, greedy, the same tokens (checked), interleaved round-robin, medians of
the wall clock and of this process's CPU time:
  hf-generate  ``model.generate`` (Hugging Face's own loop), no capture
  steps        the step loop attnscope decodes with (prefill + one call per token), no capture
  qk-store     ``attnscope.generation`` decode with ``form="qk"`` (prefill captured, decode
               steps through the sdpa tap) and the store written (one causal q/k segment
               per layer); no ``L x L`` map is built
  qk-maps      the same plus every layer's in-memory ``(1, head, L, L)`` probabilities
               computed from its q/k (what ``attnscope.generate`` draws and scores)
Size: the q/k segment of ``--size-length`` tokens (a prefill of that length captured into
a ``form="qk"`` store: the same arrays a generation's merged segment holds) against the
float32 probabilities ``head * L * L * 4`` bytes per layer.

    python benchmarks/generate_qk.py [--prompt 1024 --new 1024 --size-length 8192
                                      --repeats 3 --threads 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

import torch

import attnscope
from attnscope.generation.decoding import Sampling, decode
from attnscope.generation.outputs import write_store
from attnscope.generation.protocol import HFCausalLM
from attnscope.generation.qk_steps import materialize


def model(context: int):
    import transformers as tf

    torch.manual_seed(0)
    cfg = tf.LlamaConfig(vocab_size=1000, hidden_size=256, intermediate_size=512,
                         num_hidden_layers=4, num_attention_heads=8, num_key_value_heads=2,
                         max_position_embeddings=context)
    return tf.LlamaForCausalLM._from_config(cfg, attn_implementation="sdpa").eval()


def hf_generate(net, ids: list[int], new: int) -> list[int]:
    with torch.inference_mode():
        out = net.generate(torch.tensor([ids]), max_new_tokens=new, min_new_tokens=new,
                           do_sample=False, pad_token_id=0)
    return out[0].tolist()


def steps(lm: HFCausalLM, ids: list[int], new: int) -> list[int]:
    seq = list(ids)
    with torch.inference_mode():
        logits, cache = lm.step(torch.tensor([seq]), None)
        for _ in range(new):
            seq.append(int(torch.argmax(logits[0, -1])))
            logits, cache = lm.step(torch.tensor([[seq[-1]]]), cache)
    return seq


def qk_store(lm: HFCausalLM, ids: list[int], new: int, folder: Path,
             maps: bool = False) -> list[int]:
    d = decode(lm, ids, new, Sampling(), form="qk")
    assert all(m.weights.is_meta for m in d.maps.values()), "not the tapped decode path"
    if maps:
        materialize(d.maps)
    r = SimpleNamespace(tokens=[str(i) for i in d.ids], prompt_length=d.prompt_length,
                        maps=d.maps)
    write_store(r, folder, "generation", "qk")
    return d.ids


def size(net, length: int, folder: Path) -> tuple[int, int]:
    ids = torch.randint(0, 1000, (1, length), generator=torch.Generator().manual_seed(1))
    with torch.inference_mode(), attnscope.capture(net, store=folder, step="s", form="qk"):
        net(input_ids=ids)
    store = attnscope.open_store(folder)
    qk = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    heads = net.config.num_attention_heads
    return qk, len(store.modules) * heads * length * length * 4


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompt", type=int, default=1024)
    ap.add_argument("--new", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--size-length", type=int, default=8192)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    warnings.simplefilter("ignore")
    net = model(max(a.prompt + a.new + 1, a.size_length))
    lm = HFCausalLM(net)
    ids = torch.randint(0, 1000, (a.prompt,), generator=torch.Generator().manual_seed(0))
    ids = ids.tolist()
    tmp = Path(tempfile.mkdtemp())
    runs = {"hf-generate": lambda i: hf_generate(net, ids, a.new),
            "steps": lambda i: steps(lm, ids, a.new),
            "qk-store": lambda i: qk_store(lm, ids, a.new, tmp / f"g{i}"),
            "qk-maps": lambda i: qk_store(lm, ids, a.new, tmp / f"m{i}", maps=True)}
    want = steps(lm, ids, a.new)  # warm-up, and the tokens every variant must give
    hf_generate(net, ids, 4)  # warm-up of the others (first calls build caches, kernels)
    qk_store(lm, ids, 4, tmp / "warm")
    # wall-clock and this process's CPU time: on a shared machine the CPU time is the
    # steadier of the two (other processes stretch the wall clock, not it)
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in runs}
    for i in range(a.repeats):
        for name, run in runs.items():
            t, c = time.perf_counter(), time.process_time()
            got = run(i)
            times[name].append((time.perf_counter() - t, time.process_time() - c))
            assert got == want, name
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"prompt {a.prompt} + {a.new} generated, {a.threads} threads, "
          f"median of {a.repeats} (load average {load}):")
    for clock, axis in (("wall", 0), ("cpu", 1)):
        med = {k: statistics.median(v[axis] for v in vs) for k, vs in times.items()}
        for name, t in med.items():
            print(f"  {clock:4s} {name:12s} {t:8.2f} s   x{t / med['hf-generate']:.3f} of "
                  f"hf-generate   x{t / med['steps']:.3f} of steps")
    store = tmp / "g0"
    qk_bytes = sum(f.stat().st_size for f in store.rglob("*") if f.is_file())
    length = a.prompt + a.new
    probs = 4 * 8 * length * length * 4
    print(f"  store at L={length}: {qk_bytes / 1e6:.2f} MB, float32 probabilities "
          f"{probs / 1e6:.1f} MB: ratio {qk_bytes / probs:.4f}")
    qk, probs = size(net, a.size_length, tmp / "size")
    print(f"  q/k store at L={a.size_length}: {qk / 1e6:.2f} MB, float32 probabilities "
          f"{probs / 1e6:.0f} MB: ratio {qk / probs:.5f}")


if __name__ == "__main__":
    main()
