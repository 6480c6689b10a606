#!/usr/bin/env bash
# The evaluation protocols behind reports/ (a few minutes; needs scripts/build_phonetic_data.sh
# first: the held-out alignments and the texts the cloning protocol must leave out).
#
#   bash scripts/build_protocols.sh [../shared/real-speech]
#
# runs/protocol.json  synthetic-50: unseen synthetic voices (data/corpus's test split)
# runs/real.json      real-50: held-out LibriSpeech test-other and VCTK speakers
# runs/lj-folder.json lj-50: held-out LJSpeech clips into the held-out real voices
# runs/clone.json     clone-50: held-out sentences x unseen real and synthetic voices
# data/protocols/reflen/protocol-{3,10,30}s.json  the reference-length curve
# runs/dev.json       dev-40: training speakers only, for choosing settings (scripts/dev_protocol.py)
set -euo pipefail
cd "$(dirname "$0")/.."
REAL=${1:-../shared/real-speech}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

python3 -m eval protocol --corpus data/corpus --out runs/protocol.json --trials 50 --seed 0 --unseen-only
python3 -m eval real-speech-protocol --root "$REAL" --out runs/real.json --trials 50 --seed 0 \
    --alignments data/aligned/heldout.jsonl
# one voice per held-out real speaker, a folder of its clips (the protocol takes two of them)
python3 - "$REAL" <<'EOF'
import sys
from pathlib import Path
real = Path(sys.argv[1])
voices = Path("data/protocols/voices")
for speaker in sorted(real.glob("librispeech/test-*/*")) + sorted(real.glob("vctk/p*")):
    if not speaker.is_dir():
        continue
    folder = voices / speaker.name
    folder.mkdir(parents=True, exist_ok=True)
    for clip in sorted(p for p in speaker.iterdir() if p.suffix in {".flac", ".wav"}):
        link = folder / clip.name
        if not link.exists():
            link.symlink_to(clip.resolve())
EOF
python3 -m eval folder-protocol --sources data/protocols/lj-sources --references data/protocols/voices \
    --texts "$REAL/ljspeech/metadata.csv" --max-references 2 --trials 50 --seed 0 --out runs/lj-folder.json
python3 -m eval clone-protocol --out runs/clone.json --trials 50 --seed 0 --root "$REAL" \
    --exclude-texts data/train/corpus-big-train.jsonl data/aligned/ljspeech-train.jsonl \
    data/aligned/librispeech-train.jsonl data/piper/manifest.jsonl
python3 scripts/reference_length_protocols.py --root "$REAL" --out data/protocols/reflen \
    --seconds 3 10 30 --sources-per-speaker 2 --trials 42
python3 scripts/dev_protocol.py --root "$REAL" --out runs/dev.json
echo "protocols ready under runs/ and data/protocols/"
