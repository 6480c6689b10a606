"""Naturalness without listeners: DNSMOS (Reddy et al., ICASSP 2022), Microsoft's non-intrusive
MOS predictor, as the field reports it for voice conversion and TTS.

    rater = DnsMos()
    scores = rater.rate(audio)     # {"dnsmos_sig": 3.4, "dnsmos_bak": 3.9, "dnsmos_ovrl": 3.1, "dnsmos_p808": 3.6}

SIG (speech signal), BAK (background) and OVRL (overall) follow ITU-T P.835; P808 is the
single-figure MOS of ITU-T P.808. All are on the 1-5 opinion scale. The ONNX models ship inside
the `speechmos` package (no downloads) and run on onnxruntime at 16 kHz. As DNSMOS does, a clip
shorter than 9.01 s is repeated to that length, and a longer one is scored in 9.01 s windows
one second apart and averaged.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from vc.audio import AudioSource, load_audio
from vc.errors import VoicelabError

SAMPLE_RATE = 16000
FIELDS = {"ovrl_mos": "dnsmos_ovrl", "sig_mos": "dnsmos_sig", "bak_mos": "dnsmos_bak", "p808_mos": "dnsmos_p808"}


class DnsMos:
    """DNSMOS P.835 (SIG/BAK/OVRL) and P.808 from speechmos's ONNX models.

    Args:
        threads: onnxruntime intra-op threads (None: onnxruntime's default).
    """

    name = "dnsmos"

    def __init__(self, threads: int | None = None):
        try:
            import onnxruntime
            from speechmos import dnsmos as speechmos_dnsmos
        except ImportError as error:
            raise VoicelabError("DNSMOS needs the `speechmos` and `onnxruntime` packages: "
                                "pip install speechmos onnxruntime") from error
        models = Path(speechmos_dnsmos.__file__).parent / "dnsmos_models"
        primary, p808 = models / "sig_bak_ovr.onnx", models / "model_v8.onnx"
        for path in (primary, p808):
            if not path.is_file():
                raise VoicelabError(f"the speechmos package lacks {path.name} (looked in {models}); reinstall it")
        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = options.inter_op_num_threads = threads
        # speechmos's DNSMOS class holds the windowing and the P.835 polynomial mapping; its
        # sessions are opened here with our thread settings instead of its defaults
        self._model = speechmos_dnsmos.DNSMOS.__new__(speechmos_dnsmos.DNSMOS)
        self._model.primary_model_path = os.fspath(primary)
        self._model.onnx_sess = onnxruntime.InferenceSession(os.fspath(primary), options,
                                                             providers=["CPUExecutionProvider"])
        self._model.p808_onnx_sess = onnxruntime.InferenceSession(os.fspath(p808), options,
                                                                  providers=["CPUExecutionProvider"])

    def rate(self, audio: AudioSource) -> dict[str, float]:
        """The four DNSMOS figures of one clip (any rate; resampled to 16 kHz). `load_audio`
        refuses empty and non-finite audio with an AudioError."""
        samples = load_audio(audio).resample(SAMPLE_RATE).samples.astype(np.float32)
        if samples.size < SAMPLE_RATE // 10:
            raise ValueError(f"DNSMOS needs at least 0.1 s of audio, got {samples.size / SAMPLE_RATE:.3f} s")
        scores = self._model(np.clip(samples, -1.0, 1.0), SAMPLE_RATE, False)
        return {ours: float(scores[theirs]) for theirs, ours in FIELDS.items()}
