"""Check eval.abx against the reference implementation, zerospeech-libriabx2 (zrc_abx2).

Both score the same `.item` file and the same features (.npy, one per utterance) of two small
synthetic corpora: utterances are phone strings from a few speakers, each phone frame a
phone-specific vector plus a speaker offset plus noise, at 100 frames per second.
"balanced" has every speaker say every triphone of a small set; "random" is random phone
strings (unbalanced contexts, so the across-speaker averaging orders differ) with phone edges
on a 5 ms grid, so that edges fall exactly on frame centres and one-frame items are skipped.
Prints the within- and across-speaker errors (%) of:

- zerospeech-libriabx2, within-context, cosine (angular) distance, no sampling;
- eval.abx with its defaults, which follow Libri-light: these must match the package; the
  script prints the largest absolute difference (as a fraction, over both modes and both
  corpora) and exits with status 1 when it exceeds 1e-6;
- eval.abx with each of its two alternative conventions, to show their effect:
  frame_selection="inclusive" (keeps the last frame centred in the item, which Libri-light's
  slice drops) and across_averaging="speaker-pairs" (averages over contexts per speaker pair,
  where Libri-light averages over (context, speaker_X) together per speaker_AB).

No sampling happens in either (group and X-speaker limits above the data's sizes).

Needs zerospeech-libriabx2, which is not a project dependency: `pip install
zerospeech-libriabx2` (add --no-deps in an environment that already has torch) builds a C
extension, so it needs a C compiler. Its CPC part imports torchaudio, which the ABX part never
uses; an empty stand-in module is put in its place when torchaudio is missing. Without the
package the script says so and exits with status 0.

    OMP_NUM_THREADS=1 python scripts/abx_agreement.py [--seed 0] [--noise 2.0]
"""
from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
import types
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from eval.abx import abx_error, items_from_alignments, write_item_file  # noqa: E402

RATE = 100.0


def make_corpus(kind: str, seed: int, noise: float, dim: int = 16):
    """Alignments, speakers and features (utt -> (frames, dim)) of a synthetic corpus.

    balanced: every speaker says every (prev, phone, next) triphone of a small set twice,
    phones 3 to 8 frames long on the 10 ms frame grid;
    random: 30 utterances of 14 random phones each, so contexts are unbalanced, with phone
    edges on a 5 ms grid (10 to 80 ms): many edges fall exactly on a frame centre, and the
    shortest items keep no frame in Libri-light's slice and are skipped. A frame takes the
    vector of the phone its centre falls in."""
    rng = np.random.default_rng(seed)
    phones = list("abcdef")
    speakers = ["s1", "s2", "s3"]
    phone_vec = {p: rng.normal(size=dim) for p in phones}
    speaker_vec = {s: 0.5 * rng.normal(size=dim) for s in speakers}
    alignments, spk_of, feats = {}, {}, {}
    if kind == "random":
        for k in range(30):
            utt, spk, string = f"utt{k:03d}", speakers[k % 3], list(rng.choice(phones, 14))
            edges = np.round(np.concatenate([[0.0], np.cumsum(
                rng.integers(2, 17, size=len(string)) * 0.005)]), 6)
            n_frames = int(np.ceil(edges[-1] * RATE - 1e-9))
            centres = (np.arange(n_frames) + 0.5) / RATE
            seg = np.minimum(np.searchsorted(edges, centres, side="right") - 1, len(string) - 1)
            frames = np.stack([phone_vec[string[j]] for j in seg]) + speaker_vec[spk]
            feats[utt] = (frames + noise * rng.normal(size=frames.shape)).astype(np.float32)
            alignments[utt] = [(float(edges[j]), float(edges[j + 1]), ph)
                               for j, ph in enumerate(string)]
            spk_of[utt] = spk
        return alignments, spk_of, feats
    strings = []
    for spk in speakers:
        for prev, nxt in (("a", "b"), ("b", "a"), ("e", "f")):
            for ph in "abcd":
                strings += [(spk, [prev, ph, nxt])] * 2
    for k, (spk, string) in enumerate(strings):
        utt, t, segs, frames = f"utt{k:03d}", 0.0, [], []
        for ph in string:
            n = int(rng.integers(3, 9))
            segs.append((round(t, 6), round(t + n / RATE, 6), ph))
            frames.append(phone_vec[ph] + speaker_vec[spk] + noise * rng.normal(size=(n, dim)))
            t += n / RATE
        alignments[utt], spk_of[utt] = segs, spk
        feats[utt] = np.concatenate(frames).astype(np.float32)
    return alignments, spk_of, feats


TOLERANCE = 1e-6
INSTALL_NOTE = ("install it with `pip install zerospeech-libriabx2` (it builds a C extension, "
                "so it needs a C compiler; it also needs torch, and its CPC part imports "
                "torchaudio, which this script stubs when missing)")


def load_reference():
    """zrc_abx2's (EvalABX, EvalArgs), or None with the reason when it cannot be imported."""
    try:
        import torchaudio  # noqa: F401
    except ImportError:
        sys.modules["torchaudio"] = types.ModuleType("torchaudio")
    try:
        import torch
        from zrc_abx2.eval_ABX import EvalABX, EvalArgs
    except ImportError as error:
        return None, f"{type(error).__name__}: {error}"
    torch.set_num_threads(1)
    return (EvalABX, EvalArgs), None


def reference_scores(reference, item_path: Path, feat_dir: Path,
                     seed: int) -> dict[str, float]:
    """within/across errors (fractions) from zrc_abx2, within-context, cosine distance."""
    EvalABX, EvalArgs = reference
    args = EvalArgs(path_data=str(feat_dir), path_item_file=str(item_path),
                    file_extension=".npy", feature_size=1 / RATE, speaker_mode="all",
                    context_mode="within", distance_mode="cosine", max_size_group=10_000,
                    max_x_across=10_000, seed=seed)
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its progress prints and torch deprecation notes
        results = EvalABX().eval_abx(args)
    return {r["abx-s-condition"]: r["score"] for r in results}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--noise", type=float, default=2.0)
    args = parser.parse_args(argv)
    reference, reason = load_reference()
    if reference is None:
        print(f"zerospeech-libriabx2 (zrc_abx2) is not importable ({reason}); nothing to "
              f"compare. To run this check, {INSTALL_NOTE}.")
        print("note: skipped, not failed (exit status 0).")
        return 0
    variants = (("eval.abx (defaults)", {}),
                ("eval.abx inclusive frames", {"frame_selection": "inclusive"}),
                ("eval.abx speaker-pairs avg", {"across_averaging": "speaker-pairs"}))
    print(f"{'corpus':9} {'implementation':28} {'within %':>10} {'across %':>10} "
          f"{'items':>6} {'skipped':>7}")
    max_diff = 0.0
    for kind in ("balanced", "random"):
        alignments, speakers, feats = make_corpus(kind, args.seed, args.noise)
        items = items_from_alignments(alignments, speakers)
        with tempfile.TemporaryDirectory() as tmp:
            item_path, feat_dir = Path(tmp) / "synthetic.item", Path(tmp) / "features"
            feat_dir.mkdir()
            write_item_file(item_path, items)
            for utt, f in feats.items():
                np.save(feat_dir / f"{utt}.npy", f)
            ref = reference_scores(reference, item_path, feat_dir, args.seed)
        print(f"{kind:9} {'zerospeech-libriabx2':28} {100 * ref['within']:10.6f} "
              f"{100 * ref['across']:10.6f}")
        for name, options in variants:
            ours = {m: abx_error(items, feats, RATE, mode=m, **options)
                    for m in ("within", "across")}
            if not options:
                max_diff = max([max_diff] + [abs(ours[m]["error"] - ref[m]) for m in ours])
            print(f"{kind:9} {name:28} {100 * ours['within']['error']:10.6f} "
                  f"{100 * ours['across']['error']:10.6f} {ours['within']['n_items']:6d} "
                  f"{ours['within']['n_items_skipped']:7d}")
    ok = max_diff <= TOLERANCE
    print(f"max |eval.abx (defaults) - zerospeech-libriabx2| over within/across and both "
          f"corpora: {max_diff:.3g} (as a fraction; tolerance {TOLERANCE:g}): "
          f"{'OK' if ok else 'MISMATCH'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
