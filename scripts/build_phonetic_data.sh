#!/usr/bin/env bash
# Rebuild the phonetic family's training data and the held-out alignments under data/ (resumable:
# every step keeps what it finished). About an hour on 2 CPU cores, most of it synthesis,
# Whisper transcription and alignment. Needs scripts/setup.sh --tests (Whisper, Piper).
#
#   bash scripts/build_phonetic_data.sh [../shared/real-speech]
set -euo pipefail
cd "$(dirname "$0")/.."
REAL=${1:-../shared/real-speech}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}   # 2 threads on a busy 2-core machine run 10x slower

# the README's 30-voice corpus (the synthetic protocol's unseen voices live in its test split)
python3 -m vc.data build-corpus --out data/corpus --voices 30 --sentences 20 --seed 0 --quiet
# its train split (the vocoder fine-tune's synthetic voices)
python3 -m vc.data subset --corpus data/corpus --split train --out data/train/corpus-train.jsonl
# all 45 synthetic voices x 200 sentences; training keeps their train split minus data/corpus's test voices
python3 -m vc.data build-corpus --out data/corpus-big --voices 45 --sentences 200 --seed 0 --quiet
python3 -m vc.data subset --corpus data/corpus-big --split train --exclude-test-of data/corpus \
    --out data/train/corpus-big-train.jsonl
# real speech with phone labels: LJSpeech (its last 25 clips held out as folder-protocol sources)
python3 -m vc.data align --corpus "$REAL/ljspeech" --out data/aligned/ljspeech.jsonl --quiet
python3 - <<'EOF'
import json
from pathlib import Path
rows = [json.loads(line) for line in Path("data/aligned/ljspeech.jsonl").read_text().splitlines()]
rows.sort(key=lambda r: Path(r["path"]).stem)
held = {Path(r["path"]).stem for r in rows[-25:]}
Path("data/aligned/ljspeech-train.jsonl").write_text(
    "".join(json.dumps(r) + "\n" for r in rows if Path(r["path"]).stem not in held))
Path("data/protocols/lj-sources").mkdir(parents=True, exist_ok=True)
for r in rows[-25:]:
    link = Path("data/protocols/lj-sources") / Path(r["path"]).name
    if not link.exists():
        link.symlink_to((Path("data/aligned") / r["path"]).resolve())
EOF
# LibriSpeech train-clean-100: Whisper transcripts, then alignments
python3 scripts/transcribe_corpus.py --corpus "$REAL/librispeech/train-clean-100" \
    --out data/aligned/librispeech-train-text.jsonl --threads 1
python3 -m vc.data align --corpus data/aligned/librispeech-train-text.jsonl --out data/aligned/librispeech-train.jsonl --quiet
# each LibriSpeech speaker shifted by -400/-200/+200/+400 cents: 980 more real-sounding voices
python3 -m vc.data shift-speakers --manifest data/aligned/librispeech-train.jsonl --out data/shifted/librispeech \
    --cents -400 -200 200 400 --quiet
# and by -500/-300/+300/+500 cents: 980 more, the second fine-tune's voices (a folder of their own)
python3 -m vc.data shift-speakers --manifest data/aligned/librispeech-train.jsonl --out data/shifted/librispeech-more \
    --cents -500 -300 300 500 --quiet
# the 2,386 synthetic clips (all 31 voices) the shifted-speaker fine-tunes were given, listed in training/configs
python3 - <<'EOF'
import json
from pathlib import Path
keep = set(Path("training/configs/corpus-big-train-quarter.txt").read_text().split())
rows = Path("data/train/corpus-big-train.jsonl").read_text().splitlines()
Path("data/train/corpus-big-train-quarter.jsonl").write_text(
    "".join(line + "\n" for line in rows if json.loads(line)["path"].split("wavs/", 1)[1] in keep))
EOF
# Piper's joe voice and five shifted variants
python3 -m vc.data build-piper --out data/piper --sentences 300 --variants 6 --quiet
# held-out real clips aligned for real-speech ABX (never trained on)
python3 scripts/transcribe_corpus.py --corpus "$REAL/librispeech/test-other" --out data/aligned/heldout-text.jsonl --threads 1
python3 -m vc.data align --corpus data/aligned/heldout-text.jsonl --out data/aligned/heldout.jsonl --quiet
python3 -m vc.data align --corpus "$REAL/vctk" --out data/aligned/heldout.jsonl --quiet
echo "phonetic training data ready under data/"
