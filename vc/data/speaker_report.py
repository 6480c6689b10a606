"""How distinct are a corpus's speakers, as the speaker encoder hears them?

For each speaker we embed up to K utterances, average them (re-normalised) into a speaker mean,
and compare: an utterance with its own speaker's mean (same-voice cosine; its own embedding is
left out of that mean, so the number is not flattered) and with every other speaker's mean
(cross-voice cosine). Speaker means compared pairwise give the matrix, the heatmap and the most
similar pair; pairs above `near_duplicate` are listed as near-duplicates.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import numpy as np

from vc.errors import VoicelabError
from vc.data.readers import read_corpus
from vc.data.utterance import Utterance


def speaker_similarity(utterances: list[Utterance], encoder, per_speaker: int = 8, seed: int = 0,
                       near_duplicate: float = 0.9) -> dict:
    """Embed and compare speakers. `encoder` has `.embed(path) -> (256,) unit-norm array`.

    Returns a JSON-ready dict: speakers, matrix (speaker-mean cosines), same_voice_mean,
    cross_voice_mean, most_similar_pair, near_duplicates.
    """
    by_speaker: dict[str, list[Utterance]] = {}
    for utt in utterances:
        by_speaker.setdefault(utt.speaker, []).append(utt)
    if len(by_speaker) < 2:
        raise VoicelabError(f"a speaker report needs at least 2 speakers; found {len(by_speaker)}")
    rng = random.Random(seed)
    speakers = sorted(by_speaker)
    embeddings: dict[str, np.ndarray] = {}
    for speaker in speakers:
        utts = sorted(by_speaker[speaker], key=lambda u: str(u.path))
        chosen = rng.sample(utts, min(per_speaker, len(utts)))
        embeddings[speaker] = np.stack([np.asarray(encoder.embed(u.path), dtype=np.float64) for u in chosen])

    means = np.stack([_unit(e.mean(axis=0)) for e in embeddings.values()])  # (S, D)
    matrix = means @ means.T
    same, cross = [], []
    for i, speaker in enumerate(speakers):
        embs = embeddings[speaker]
        for j, emb in enumerate(embs):
            if len(embs) > 1:  # leave-one-out mean of the same speaker
                same.append(float(emb @ _unit(np.delete(embs, j, axis=0).mean(axis=0))))
            others = np.delete(means, i, axis=0)
            cross.extend((others @ emb).tolist())
    off_diagonal = matrix - 2.0 * np.eye(len(speakers))
    i, j = np.unravel_index(np.argmax(off_diagonal), off_diagonal.shape)
    near = [(speakers[a], speakers[b], round(float(matrix[a, b]), 4))
            for a in range(len(speakers)) for b in range(a + 1, len(speakers)) if matrix[a, b] > near_duplicate]
    return {
        "speakers": speakers,
        "utterances_per_speaker": {s: len(embeddings[s]) for s in speakers},
        "same_voice_mean": round(float(np.mean(same)), 4) if same else None,
        "cross_voice_mean": round(float(np.mean(cross)), 4),
        "speaker_mean_cosine_offdiag_mean": round(float(matrix[~np.eye(len(speakers), dtype=bool)].mean()), 4),
        "most_similar_pair": [speakers[i], speakers[j], round(float(matrix[i, j]), 4)],
        "near_duplicate_threshold": near_duplicate,
        "near_duplicates": sorted(near, key=lambda t: -t[2]),
        "matrix": np.round(matrix, 4).tolist(),
    }


def speaker_report(corpus: str | os.PathLike, out_dir: str | os.PathLike | None = None, per_speaker: int = 8,
                   seed: int = 0, encoder=None) -> dict:
    """Run `speaker_similarity` on a corpus; write speaker_report.json and (with matplotlib) .png."""
    corpus = Path(corpus)
    if encoder is None:
        try:
            from vc.speaker import SpeakerEncoder
        except ImportError as err:
            raise VoicelabError(f"the speaker report needs vc.speaker.SpeakerEncoder, which could not be imported ({err})") from None
        encoder = SpeakerEncoder.pretrained()
    report = speaker_similarity(read_corpus(corpus), encoder, per_speaker=per_speaker, seed=seed)
    out_dir = Path(out_dir) if out_dir is not None else (corpus if corpus.is_dir() else corpus.parent)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "speaker_report.json"
    json_path.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    report["json"] = str(json_path)
    png = _heatmap(report, out_dir / "speaker_report.png")
    if png is not None:
        report["png"] = str(png)
    return report


def _heatmap(report: dict, path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None  # the PNG is a convenience; the JSON has the numbers
    speakers, matrix = report["speakers"], np.asarray(report["matrix"])
    size = max(6.0, 0.28 * len(speakers) + 2.5)
    fig, ax = plt.subplots(figsize=(size + 1.0, size))
    image = ax.imshow(matrix, cmap="viridis", vmin=min(0.0, float(matrix.min())), vmax=1.0)
    ax.set_xticks(range(len(speakers)), speakers, rotation=90, fontsize=7)
    ax.set_yticks(range(len(speakers)), speakers, fontsize=7)
    ax.set_title(f"speaker-mean cosine (same-voice {report['same_voice_mean']}, cross-voice {report['cross_voice_mean']})",
                 fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def format_report(report: dict) -> str:
    a, b, cos = report["most_similar_pair"]
    lines = [
        f"speakers: {len(report['speakers'])}",
        f"same-voice cosine (utterance vs its speaker's mean, leave-one-out): {report['same_voice_mean']}",
        f"cross-voice cosine (utterance vs other speakers' means): {report['cross_voice_mean']}",
        f"most similar distinct voices: {a} / {b}: {cos}",
        f"near-duplicates (speaker means > {report['near_duplicate_threshold']}): {len(report['near_duplicates'])}",
    ]
    lines += [f"  {x} / {y}: {c}" for x, y, c in report["near_duplicates"][:20]]
    return "\n".join(lines)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-12)
