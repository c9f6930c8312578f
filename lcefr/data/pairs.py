"""Balanced verification pairs from an image folder or from generated identities, as a ``.bin``.

Pairs are laid out as LFW's ``pairs.txt``: ten consecutive blocks, each half matched then half
mismatched pairs, so the protocol's ten contiguous folds are balanced.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from lcefr.data.binset import encode_image, write_bin
from lcefr.data.folder import scan_image_folder
from lcefr.data.images import read_face
from lcefr.data.synth import identity_rng, image_rng, lookalike_identity, render_face, synth_identity

__all__ = ["HELDOUT_OFFSET", "NEGATIVES", "PairPlan", "plan_pairs", "folder_bin", "synthetic_bin"]

#: Generated held-out sets use identity indices from here on (same seed): disjoint from any
#: generated training set with fewer identities.
HELDOUT_OFFSET = 1_000_000
FOLDS = 10

Pair = Tuple[Tuple[int, int], Tuple[int, int], bool]


@dataclass
class PairPlan:
    """``pairs[i] = ((identity, image), (identity, image), issame)``."""

    pairs: List[Pair]

    @property
    def issame(self) -> List[bool]:
        return [p[2] for p in self.pairs]

    def images(self) -> List[Tuple[int, int]]:
        return [ref for a, b, _ in self.pairs for ref in (a, b)]


def _fold_sizes(total: int, folds: int) -> List[int]:
    return [total // folds + (1 if f < total % folds else 0) for f in range(folds)]


def plan_pairs(counts: Sequence[int], pairs: int, *, seed: int = 0) -> PairPlan:
    """Choose ``pairs`` distinct pairs (half matched) over identities with ``counts[i]`` images.

    Raises:
        ValueError: fewer than two identities, none with two images, or not enough distinct pairs.
    """
    if pairs < 2:
        raise ValueError(f"--pairs must be at least 2, got {pairs}")
    counts = [int(c) for c in counts]
    multi = [i for i, c in enumerate(counts) if c >= 2]
    present = [i for i, c in enumerate(counts) if c >= 1]
    if len(present) < 2 or not multi:
        raise ValueError(f"need at least two identities and one with two images, got {len(present)} identities "
                         f"({len(multi)} with two or more images)")
    n_pos = pairs // 2
    n_neg = pairs - n_pos
    possible_pos = sum(c * (c - 1) // 2 for c in counts)
    if n_pos > possible_pos:
        raise ValueError(f"{n_pos} matched pairs requested but the images allow only {possible_pos} distinct ones")
    rng = np.random.default_rng(seed)
    seen = set()

    def draw(same: bool) -> Pair:
        for _ in range(10_000):
            if same:
                ident = int(multi[rng.integers(len(multi))])
                a, b = sorted(int(v) for v in rng.choice(counts[ident], size=2, replace=False))
                pair = ((ident, a), (ident, b), True)
            else:
                i, j = (int(present[v]) for v in rng.choice(len(present), size=2, replace=False))
                pair = ((i, int(rng.integers(counts[i]))), (j, int(rng.integers(counts[j]))), False)
            key = (min(pair[0], pair[1]), max(pair[0], pair[1]))
            if key not in seen:
                seen.add(key)
                return pair
        raise ValueError("could not find enough distinct pairs; use fewer --pairs or more images")

    plan: List[Pair] = []
    for pos, neg in zip(_fold_sizes(n_pos, FOLDS), _fold_sizes(n_neg, FOLDS)):
        plan.extend(draw(True) for _ in range(pos))
        plan.extend(draw(False) for _ in range(neg))
    return PairPlan(plan)


def _write(out: str, plan: PairPlan, load: Callable[[int, int], bytes], *, as_arrays: bool,
           progress: Optional[Callable[[int], None]]) -> Dict:
    cache: Dict[Tuple[int, int], bytes] = {}
    elements = []
    for ref in plan.images():
        if ref not in cache:
            cache[ref] = load(*ref)
        elements.append(cache[ref])
        if progress is not None:
            progress(1)
    write_bin(out, elements, plan.issame, as_arrays=as_arrays)
    return {"out": os.path.abspath(out), "pairs": len(plan.pairs), "matched": sum(plan.issame),
            "images": len(elements), "unique_images": len(cache), "bytes": os.path.getsize(out)}


def folder_bin(
    root: str,
    out: str,
    *,
    pairs: int,
    seed: int = 0,
    disjoint_from: Optional[str] = None,
    as_arrays: bool = False,
    progress: Optional[Callable[[int], None]] = None,
) -> Dict:
    """A ``.bin`` of ``pairs`` pairs from an identity folder (original file bytes, as insightface packs).

    Args:
        disjoint_from: a training image folder; identities (folder names) found there are left out.

    Raises:
        ValueError: too few identities/images, or an image that is not an aligned 112x112 face.
    """
    folder = scan_image_folder(root)
    keep = list(range(folder.num_classes))
    excluded = 0
    if disjoint_from:
        taken = set(scan_image_folder(disjoint_from).classes)
        keep = [c for c in keep if folder.classes[c] not in taken]
        excluded = folder.num_classes - len(keep)
        if len(keep) < 2:
            raise ValueError(f"only {len(keep)} identities of {root} are not in {disjoint_from}")
    by_class = {c: [p for p, y in zip(folder.paths, folder.labels) if y == c] for c in keep}
    plan = plan_pairs([len(by_class[c]) for c in keep], pairs, seed=seed)

    def load(ident: int, k: int) -> bytes:
        path = by_class[keep[ident]][k]
        read_face(path)  # validates: decodes and is 112x112
        with open(path, "rb") as f:
            return f.read()

    summary = _write(out, plan, load, as_arrays=as_arrays, progress=progress)
    return {**summary, "source": os.path.abspath(root), "identities": len(keep), "excluded_identities": excluded}


NEGATIVES = ("random", "lookalike")


def synthetic_bin(
    out: str,
    *,
    pairs: int,
    seed: int = 0,
    per_identity: int = 10,
    identities: Optional[int] = None,
    negatives: str = "random",
    as_arrays: bool = False,
    progress: Optional[Callable[[int], None]] = None,
) -> Dict:
    """A held-out ``.bin`` of generated faces (identities from :data:`HELDOUT_OFFSET` on, JPEG quality 95 as real sets).

    ``identities`` defaults to ``max(pairs // 10, 20)``: about ten pairs per person, as LFW.

    ``negatives="lookalike"`` makes every mismatched pair hard: its second face is not the other held-out
    person ``j`` but a look-alike of the first person ``i`` (same colouring, hair, beard, glasses and head
    size, ``j``'s facial geometry; :func:`lcefr.data.synth.lookalike_identity`), rendered with its own
    nuisance stream. Matched pairs are the same as with random negatives.
    """
    if negatives not in NEGATIVES:
        raise ValueError(f"negatives must be one of {NEGATIVES}, got {negatives!r}")
    identities = identities or max(pairs // 10, 20)
    plan = plan_pairs([per_identity] * identities, pairs, seed=seed)
    if negatives == "lookalike":
        plan = PairPlan([p if p[2] else (p[0], ((p[0][0], p[1][0]), p[1][1]), False) for p in plan.pairs])
    people: Dict[int, object] = {}

    def person(ident: int):
        if ident not in people:
            people[ident] = synth_identity(identity_rng(seed, HELDOUT_OFFSET + ident))
        return people[ident]

    def load(ident, k: int) -> bytes:
        if isinstance(ident, tuple):  # look-alike of person ident[0] with ident[1]'s geometry
            base, donor = ident
            face = lookalike_identity(person(base), person(donor))
            rng = np.random.default_rng(np.random.SeedSequence([int(seed), 2, HELDOUT_OFFSET + base,
                                                                HELDOUT_OFFSET + donor, int(k)]))
        else:
            face = person(ident)
            rng = image_rng(seed, HELDOUT_OFFSET + ident, k)
        return encode_image(render_face(face, rng), fmt=".jpg", quality=95)

    summary = _write(out, plan, load, as_arrays=as_arrays, progress=progress)
    return {**summary, "source": "synthetic", "seed": seed, "identities": identities, "negatives": negatives}
