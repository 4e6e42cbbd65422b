"""The translation demo's language pair: subject-object-verb sources with particles
(``ookii neko ga akai ringo wo taberu``), subject-verb-object targets (``big cat eats red
apple``), one token per word on each side, and the alignment of every target word to
its source word, so the correct cross-attention is known."""

from __future__ import annotations

import torch

SUBJECTS = [("neko", "cat"), ("inu", "dog"), ("tori", "bird"), ("uma", "horse"),
            ("kuma", "bear"), ("saru", "monkey")]
OBJECTS = [("ringo", "apple"), ("sakana", "fish"), ("hon", "book"), ("mizu", "water"),
           ("pan", "bread"), ("hana", "flower")]
VERBS = [("taberu", "eats"), ("miru", "sees"), ("motsu", "holds"), ("kau", "buys"),
         ("nageru", "throws"), ("arau", "washes")]
ADJECTIVES = [("ookii", "big"), ("chiisai", "small"), ("akai", "red"), ("aoi", "blue"),
              ("furui", "old")]
SPECIAL = ["<pad>", "<bos>", "<eos>"]
PAD, BOS, EOS = 0, 1, 2
VOCAB = SPECIAL + ["ga", "wo"] + [w for pairs in (SUBJECTS, OBJECTS, VERBS, ADJECTIVES)
                                 for pair in pairs for w in pair]
INDEX = {w: i for i, w in enumerate(VOCAB)}
SRC_LEN, TGT_LEN = 7, 6  # longest source; longest target + <eos>


def make_corpus(n: int, gen: torch.Generator) -> tuple[torch.Tensor, ...]:
    """``(source, target, alignment)``: alignment[t] is the source position of target
    word ``t`` (-1 for ``<eos>`` and padding)."""
    src = torch.full((n, SRC_LEN), PAD)
    tgt = torch.full((n, TGT_LEN), PAD)
    align = torch.full((n, TGT_LEN), -1)
    pick = torch.randint(0, 1000, (n, 5), generator=gen).tolist()
    for i, (s, o, v, a1, a2) in enumerate(pick):
        subj, obj, verb = SUBJECTS[s % 6], OBJECTS[o % 6], VERBS[v % 6]
        adj1 = ADJECTIVES[a1 % 5] if a1 % 2 else None
        adj2 = ADJECTIVES[a2 % 5] if a2 % 3 else None
        source: list[str] = []
        target: list[tuple[str, int]] = []
        for adj, noun, particle in ((adj1, subj, "ga"), (adj2, obj, "wo")):
            if adj:
                source.append(adj[0])
            source += [noun[0], particle]
        source.append(verb[0])
        pos = {w: j for j, w in enumerate(source)}
        for pair in (adj1, subj, verb, adj2, obj):
            if pair:
                target.append((pair[1], pos[pair[0]]))
        src[i, : len(source)] = torch.tensor([INDEX[w] for w in source])
        tgt[i, : len(target) + 1] = torch.tensor([INDEX[w] for w, _ in target] + [EOS])
        align[i, : len(target)] = torch.tensor([j for _, j in target])
    return src, tgt, align
