"""The model registry the web demo reads: shipped models work offline, missing ones are reported
with the reason, each (model, vocoder) pair loads once however many visitors ask at once."""
from __future__ import annotations

import json
import threading

import pytest

from vc.errors import ModelNotFoundError, VoicelabError
from vc.registry import ModelRegistry


@pytest.fixture
def registry_file(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache
    path = tmp_path / "models.json"
    path.write_text(json.dumps({
        "converters": [{"name": "vqvc-small", "source": "vqvc-small"},
                       {"name": "from-hub", "source": "someone/vqvc-vctk", "revision": "0123abc"}],
        "vocoders": [{"name": "griffinlim", "source": "griffinlim"}, {"name": "hifigan-fast", "source": "hifigan-fast"}],
        "default_vocoder": "griffinlim"}))
    return path


def test_offline_hub_entries_are_reported_and_shipped_ones_work(registry_file):
    registry = ModelRegistry.from_file(registry_file)
    assert registry.converter_names() == ["vqvc-small"]
    assert registry.vocoder_names() == ["griffinlim", "hifigan-fast"]
    missing = registry.unavailable()
    assert list(missing) == ["from-hub"] and "someone/vqvc-vctk" in missing["from-hub"]
    assert "offline" in missing["from-hub"]
    with pytest.raises(ModelNotFoundError, match="'from-hub' is unavailable"):
        registry.converter("from-hub", "griffinlim")
    with pytest.raises(ModelNotFoundError, match="unknown vocoder 'wavenet'.*griffinlim, hifigan-fast"):
        registry.converter("vqvc-small", "wavenet")
    assert registry.model_folder("vqvc-small").joinpath("README.md").is_file()
    assert registry.model_folder("griffinlim") is None


def test_each_pair_loads_once_even_under_concurrent_requests(registry_file):
    registry = ModelRegistry.from_file(registry_file)
    got = []
    threads = [threading.Thread(target=lambda: got.append(registry.converter("vqvc-small", "hifigan-fast")))
               for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(got) == 4 and all(c is got[0] for c in got)
    other = registry.converter("vqvc-small", "griffinlim")
    assert other is not got[0]
    assert other.speaker_encoder is got[0].speaker_encoder is registry.speaker_encoder  # one GE2E for all
    assert type(got[0].vocoder).__name__ == "HiFiGAN"


def test_malformed_registry_says_what_is_wrong(tmp_path):
    bad = tmp_path / "models.json"
    bad.write_text("{not json")
    with pytest.raises(VoicelabError, match="cannot read the model registry"):
        ModelRegistry.from_file(bad)
    bad.write_text(json.dumps({"converters": [{"name": "x"}], "vocoders": [{"source": "griffinlim"}]}))
    with pytest.raises(VoicelabError, match="needs 'source'"):
        ModelRegistry.from_file(bad)
    bad.write_text(json.dumps({"converters": [], "vocoders": [{"source": "griffinlim"}]}))
    with pytest.raises(VoicelabError, match="at least one converter"):
        ModelRegistry.from_file(bad)
