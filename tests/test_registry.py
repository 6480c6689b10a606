"""The model registry the web demo reads: shipped models work offline, missing ones are reported
with the reason, each (model, vocoder) pair loads once however many visitors ask at once."""
from __future__ import annotations

import json
import threading

import pytest

from conftest import REPO
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


@pytest.fixture(scope="module")
def tiny_synth(tmp_path_factory):
    """An untrained tiny text-to-mel synthesizer saved as a model folder."""
    from vc.models.synthesizer import DurationSynthesizer
    folder = tmp_path_factory.mktemp("tiny-synth")
    DurationSynthesizer.from_preset("tiny").save_pretrained(folder)
    return folder


def _with_cloners(path, cloners, **extra):
    raw = json.loads(path.read_text())
    path.write_text(json.dumps({**raw, "cloners": cloners, **extra}))
    return path


def test_cloners_are_listed_checked_and_loaded_once_per_vocoder(registry_file, tiny_synth):
    from vc.cloning import VoiceCloner
    _with_cloners(registry_file, [{"name": "from-hub-synth", "source": "someone/synth", "revision": "0123abc"},
                                  {"name": "tiny", "source": str(tiny_synth), "description": "untrained"}],
                  default_cloner="tiny")
    registry = ModelRegistry.from_file(registry_file, cloner_options={"max_chars": 300})
    assert registry.cloner_names() == ["tiny"] and registry.default_cloner == "tiny"
    assert "offline" in registry.unavailable()["from-hub-synth"]
    assert registry.converter_names() == ["vqvc-small"]  # converters unchanged
    got = []
    threads = [threading.Thread(target=lambda: got.append(registry.cloner("tiny", "hifigan-fast"))) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    cloner = got[0]
    assert isinstance(cloner, VoiceCloner) and all(c is cloner for c in got)
    assert cloner.max_chars == 300 and type(cloner.vocoder).__name__ == "HiFiGAN"
    other = registry.cloner("tiny", "griffinlim")
    assert other is not cloner and type(other.vocoder).__name__ == "GriffinLim"
    # one GE2E for every cloner and converter of the registry
    assert other.speaker_encoder is cloner.speaker_encoder is registry.speaker_encoder
    assert registry.converter("vqvc-small", "griffinlim").speaker_encoder is registry.speaker_encoder
    assert other.phonemizer is cloner.phonemizer is registry.phonemizer  # CMUdict read once
    assert registry.model_folder("tiny") == tiny_synth
    with pytest.raises(ModelNotFoundError, match="cloner 'from-hub-synth' is unavailable"):
        registry.cloner("from-hub-synth", "griffinlim")
    with pytest.raises(ModelNotFoundError, match="unknown cloner 'vqvc-small'; choose one of: from-hub-synth, tiny"):
        registry.cloner("vqvc-small", "griffinlim")
    with pytest.raises(ModelNotFoundError, match="unknown vocoder 'wavenet'"):
        registry.cloner("tiny", "wavenet")


def test_a_registry_without_cloners_still_works_and_says_so(registry_file):
    registry = ModelRegistry.from_file(registry_file)  # the file of an older release: no "cloners"
    assert registry.cloner_names() == [] and registry.default_cloner is None
    assert registry.converter_names() == ["vqvc-small"]
    with pytest.raises(ModelNotFoundError, match="no text cloner is installed.*\"cloners\""):
        registry.cloner("synth-small", "griffinlim")


def test_bad_cloner_entries_say_what_is_wrong(registry_file, tiny_synth):
    _with_cloners(registry_file, [{"name": "tiny", "source": str(tiny_synth)}], default_cloner="synth-big")
    with pytest.raises(VoicelabError, match="default cloner 'synth-big' is not one of the cloners \\(tiny\\)"):
        ModelRegistry.from_file(registry_file)
    _with_cloners(registry_file, [{"name": "tiny"}], default_cloner=None)
    with pytest.raises(VoicelabError, match=r"cloners\[0\]: an entry needs 'source'"):
        ModelRegistry.from_file(registry_file)
    # a converter listed as a cloner is refused when it is loaded, naming what it is
    _with_cloners(registry_file, [{"name": "not-a-synth", "source": "vqvc-small"}])
    with pytest.raises(VoicelabError, match="not a text-to-mel synthesizer"):
        ModelRegistry.from_file(registry_file).cloner("not-a-synth", "griffinlim")


def test_the_shipped_registry_offers_the_synthesizer():
    registry = ModelRegistry.from_file(REPO / "models.json")
    assert registry.default_cloner == "synth-small" and "synth-small" in registry.cloners
    if not (REPO / "checkpoints" / "synth-small").is_dir():
        pytest.skip("checkpoints/synth-small is not there yet")
    assert registry.cloner_names() == ["synth-small", "synth-small-quick", "synth-small-clear"]
    default, quick, clear = (registry.cloners[n] for n in registry.cloner_names())
    # the default adapts to the reference, its phones read as the default converter reads a source
    assert default.adapt == {} and default.phone_matching == {}
    assert default.transcript == registry.converters[registry.default_converter].transcript
    from vc.__main__ import DEFAULT_GUIDE  # `python -m vc convert/clone` read the phones the same way
    assert default.transcript == DEFAULT_GUIDE
    assert quick.adapt is None and quick.phone_matching == {} and clear.phone_matching is None


def test_converter_entries_carry_transcript_guidance_and_phone_matching(tmp_path, monkeypatch):
    from vc.phone_matching import PhoneMeanMatching
    from vc.transcript_phones import TranscriptPhones

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    path = tmp_path / "models.json"
    path.write_text(json.dumps({
        "converters": [{"name": "guided", "source": "ppgvc-small", "transcript": "base",
                        "phone_matching": {"prior_frames": 10}},
                       {"name": "also-guided", "source": "ppgvc-small", "transcript": "base", "phone_matching": True},
                       {"name": "hybrid", "source": "ppgvc-small", "transcript": "base+encoder:whisper-phones"},
                       {"name": "plain", "source": "ppgvc-small"}],
        "vocoders": [{"name": "griffinlim", "source": "griffinlim"}]}))
    registry = ModelRegistry.from_file(path)
    guided, also = registry.converter("guided", "griffinlim"), registry.converter("also-guided", "griffinlim")
    plain = registry.converter("plain", "griffinlim")
    assert isinstance(guided.transcript, TranscriptPhones) and guided.transcript is also.transcript  # one Whisper
    from vc.encoder_phones import HybridPhones
    hybrid = registry.converter("hybrid", "griffinlim").transcript
    assert isinstance(hybrid, HybridPhones) and hybrid.transcript is guided.transcript  # the same Whisper again
    assert guided.phone_matching == PhoneMeanMatching(prior_frames=10.0)
    assert also.phone_matching == PhoneMeanMatching()
    assert plain.transcript is None and plain.phone_matching is None
    path.write_text(json.dumps({
        "converters": [{"source": "ppgvc-small", "phone_matching": "yes"}],
        "vocoders": [{"source": "griffinlim"}]}))
    with pytest.raises(VoicelabError, match="'phone_matching' is true, false or settings"):
        ModelRegistry.from_file(path)
    path.write_text(json.dumps({
        "converters": [{"name": "odd", "source": "ppgvc-small", "phone_matching": {"frames": 3}}],
        "vocoders": [{"source": "griffinlim"}]}))
    with pytest.raises(VoicelabError, match="'odd': bad phone_matching settings"):
        ModelRegistry.from_file(path).converter("odd", "griffinlim")


def test_cloner_and_converter_entries_can_adapt_to_their_reference_and_a_vocoder_cannot(registry_file, tiny_synth):
    from vc.adaptation import ReferenceAdaptation
    _with_cloners(registry_file, [{"name": "tiny", "source": str(tiny_synth), "adapt": {"steps": 7}},
                                  {"name": "plain", "source": str(tiny_synth)}], default_cloner="tiny")
    registry = ModelRegistry.from_file(registry_file)
    adapted = registry.cloner("tiny", "griffinlim")
    assert adapted.adaptation == ReferenceAdaptation(steps=7) and adapted.transcript is not None
    assert registry.cloner("plain", "griffinlim").adaptation is None
    _with_cloners(registry_file, [{"name": "tiny", "source": str(tiny_synth), "adapt": {"modules": ["out", "postnet"]}}])
    head = ModelRegistry.from_file(registry_file).cloner("tiny", "griffinlim").adaptation
    assert head == ReferenceAdaptation(modules=("out", "postnet"))        # a JSON list is a tuple of names
    _with_cloners(registry_file, [{"name": "tiny", "source": str(tiny_synth), "adapt": "yes"}])
    with pytest.raises(VoicelabError, match="'adapt' is true, false or settings"):
        ModelRegistry.from_file(registry_file)
    _with_cloners(registry_file, [{"name": "tiny", "source": str(tiny_synth), "adapt": {"steps": -1}}])
    with pytest.raises(VoicelabError, match="bad adapt settings"):
        ModelRegistry.from_file(registry_file).cloner("tiny", "griffinlim")
    raw = json.loads(registry_file.read_text())
    raw["converters"][0]["adapt"] = True
    registry_file.write_text(json.dumps(raw))
    assert ModelRegistry.from_file(registry_file).converters[raw["converters"][0]["name"]].adapt == {}
    raw["vocoders"][0]["adapt"] = True
    registry_file.write_text(json.dumps(raw))
    with pytest.raises(VoicelabError, match="not vocoders"):
        ModelRegistry.from_file(registry_file)
