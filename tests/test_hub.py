"""vc.hub: saving, loading, resolving and publishing models, with a tiny registered model.

No test touches the network: HF_HUB_OFFLINE is on for every test, Hub look-ups read a cache
built here in the layout snapshot_download uses, and pushes go to a recording stand-in.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import safetensors.torch
import torch
import yaml
from huggingface_hub import HfApi, constants
from huggingface_hub.repocard_data import model_index_to_eval_results
from huggingface_hub.utils import filter_repo_objects
from torch import nn

import vc.hub.model
from vc.errors import CheckpointError, ModelNotFoundError, VoicelabError
from vc.hub import (
    HubModel, as_dataclass, load_config, load_legacy_state_dict, load_model, push_to_hub,
    registered_model_types, render_model_card, update_model_card_metrics, write_model_card,
)
from vc.mel import MelConfig


class ToyModel(HubModel):
    """A tiny mel-to-vector model for tests.

    Only the first paragraph goes into the default model card.
    """

    model_type = "test-toy"
    pipeline_tag = "audio-to-audio"
    card_tags = ("voice-conversion",)

    def __init__(self, *, hidden: int = 6, out: int = 3, mel: MelConfig | dict | None = None,
                 sizes: tuple[int, ...] = (1, 2)):
        super().__init__()
        self.mel = as_dataclass(MelConfig, mel)
        self.sizes = tuple(sizes)
        self.embed = nn.Embedding(hidden, self.mel.n_mels)
        self.inp = nn.Linear(self.mel.n_mels, hidden)
        self.inp.weight = self.embed.weight  # tied: one tensor under two names
        self.head = nn.Linear(hidden, out)
        self.register_buffer("scale", torch.full((out,), 2.0))

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """(B, n_mels) -> (B, out)"""
        return self.head(torch.tanh(self.inp(mel))) * self.scale


class OtherToy(HubModel):
    model_type = "test-other-toy"

    def __init__(self, *, width: int = 2):
        super().__init__()
        self.lin = nn.Linear(width, width)


MEL = MelConfig(n_mels=8, n_fft=256, hop_length=64)


@pytest.fixture(autouse=True)
def isolated_hub(tmp_path, monkeypatch):
    """Offline, with an empty HF cache and an empty shipped-checkpoints dir for each test."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("VOICELAB_CHECKPOINTS", str(tmp_path / "shipped"))
    monkeypatch.delenv("HF_TOKEN", raising=False)


def make_model(seed: int = 0, **kwargs) -> ToyModel:
    torch.manual_seed(seed)
    return ToyModel(mel=MEL, **kwargs)


def front_matter(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n", 2)[1])


# ------------------------------------------------------------------ round trip
def test_save_load_round_trip(tmp_path):
    model = make_model(hidden=5)
    folder = model.save_pretrained(tmp_path / "toy")
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md", "config.json", "model.safetensors"]

    loaded = ToyModel.from_pretrained(folder)
    anything = load_model(str(folder))
    x = torch.randn(4, MEL.n_mels)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
        assert torch.equal(model(x), anything(x))
    assert type(anything) is ToyModel and not loaded.training
    assert loaded.mel == MEL and loaded.sizes == (1, 2)
    assert loaded.inp.weight is loaded.embed.weight  # the tie survives loading
    assert loaded.get_config() == model.get_config()


def test_half_precision_storage_halves_the_file_and_loads_back_as_float32(tmp_path):
    model = make_model(hidden=64)
    full = model.save_pretrained(tmp_path / "fp32")
    half = model.save_pretrained(tmp_path / "fp16", dtype=torch.float16)
    assert (half / "model.safetensors").stat().st_size < 0.6 * (full / "model.safetensors").stat().st_size
    loaded = ToyModel.from_pretrained(half)
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    x = torch.randn(4, MEL.n_mels)
    with torch.no_grad():
        assert torch.allclose(model(x), loaded(x), atol=1e-2)
    with pytest.raises(ValueError, match="floating-point"):
        model.save_pretrained(tmp_path / "bad", dtype=torch.int8)


def test_config_json_holds_every_constructor_argument(tmp_path):
    make_model(hidden=5).save_pretrained(tmp_path / "toy")
    config = json.loads((tmp_path / "toy" / "config.json").read_text())
    assert config["model_type"] == "test-toy"
    assert config["format_version"] == 1
    assert config["voicelab_version"] == vc.__version__
    assert config["hidden"] == 5 and config["out"] == 3  # defaults recorded too
    assert config["mel"] == MEL.to_dict() and config["sizes"] == [1, 2]
    assert load_config(tmp_path / "toy") == config


def test_init_kwargs_capture_and_constructor_contract():
    model = ToyModel(out=4)
    assert model.init_kwargs == {"hidden": 6, "out": 4, "mel": None, "sizes": (1, 2)}
    with pytest.raises(TypeError, match="keyword-only"):
        class Positional(HubModel):  # noqa: F841
            model_type = "test-positional"

            def __init__(self, width):
                super().__init__()
    with pytest.raises(TypeError, match="model_type"):
        class Reserved(HubModel):  # noqa: F841
            model_type = "test-reserved"

            def __init__(self, *, model_type="x"):
                super().__init__()
    with pytest.raises(TypeError, match="already used"):
        class Duplicate(HubModel):  # noqa: F841
            model_type = "test-toy"

            def __init__(self, *, width=2):
                super().__init__()
    with pytest.raises(TypeError, match=r"\*\*kwargs"):
        class Variadic(HubModel):  # noqa: F841
            model_type = "test-variadic"

            def __init__(self, **kwargs):
                super().__init__()
    assert "test-toy" in registered_model_types()


def test_unsaveable_argument_fails_at_save_time(tmp_path):
    model = make_model()
    model.init_kwargs["hidden"] = torch.tensor(3)
    with pytest.raises(TypeError, match=r"ToyModel\(hidden=...\) is a Tensor"):
        model.save_pretrained(tmp_path / "toy")
    model.init_kwargs["hidden"] = float("nan")
    with pytest.raises(ValueError, match=r"ToyModel\(hidden=...\) is nan"):
        model.save_pretrained(tmp_path / "toy")
    assert not (tmp_path / "toy" / "config.json").exists()


def test_as_dataclass():
    assert as_dataclass(MelConfig, None) == MelConfig()
    assert as_dataclass(MelConfig, MEL) is MEL
    assert as_dataclass(MelConfig, MEL.to_dict()) == MEL
    with pytest.raises(ValueError, match="n_mel_bins"):
        as_dataclass(MelConfig, {"n_mel_bins": 80})


# ------------------------------------------------------------------ model card
def test_default_card_front_matter(tmp_path):
    make_model().save_pretrained(tmp_path / "toy")
    text = (tmp_path / "toy" / "README.md").read_text()
    meta = front_matter(text)
    assert meta["library_name"] == "voicelab" and meta["license"] == "mit"
    assert meta["pipeline_tag"] == "audio-to-audio"
    assert {"voicelab", "test-toy", "voice-conversion"} <= set(meta["tags"])
    assert "model-index" not in meta
    assert "A tiny mel-to-vector model for tests." in text and "Only the first" not in text


def test_card_with_training_and_metrics_then_update(tmp_path):
    card = {
        "description": "Trained for a test.",
        "datasets": ["openslr/librispeech_asr", "voicelab-synthetic"],
        "training": {"steps": 1200, "batch_size": 8, "config": {"lr": 0.001}},
        "metrics": {"dataset": {"type": "vctk", "name": "VCTK held-out", "split": "test"},
                    "metrics": [{"type": "wer", "value": 0.25, "name": "WER"},
                                {"type": "eer", "value": 0.1}]},
        "model_name": "toy-small",
    }
    make_model().save_pretrained(tmp_path / "toy", card=card)
    meta = front_matter((tmp_path / "toy" / "README.md").read_text())
    assert meta["datasets"] == ["openslr/librispeech_asr", "voicelab-synthetic"]
    name, results = model_index_to_eval_results(meta["model-index"])
    assert name == "toy-small"
    assert {(r.metric_type, r.metric_value, r.task_type) for r in results} == {
        ("wer", 0.25, "audio-to-audio"), ("eer", 0.1, "audio-to-audio")}

    # eval replaces the WER on the same dataset/split and adds a new dataset
    update_model_card_metrics(tmp_path / "toy", [
        {"dataset": {"type": "vctk", "name": "VCTK held-out", "split": "test"},
         "metrics": [{"type": "wer", "value": 0.2, "name": "WER"}]},
        {"dataset": "librispeech-test-other", "metrics": [{"type": "cer", "value": 0.05}]},
    ])
    text = (tmp_path / "toy" / "README.md").read_text()
    meta = front_matter(text)
    _, results = model_index_to_eval_results(meta["model-index"])
    values = {(r.dataset_type, r.metric_type): r.metric_value for r in results}
    assert values == {("vctk", "wer"): 0.2, ("vctk", "eer"): 0.1,
                      ("librispeech-test-other", "cer"): 0.05}
    assert "| VCTK held-out | test | WER | 0.2 |" in text and "0.25" not in text
    assert "| steps | 1200 |" in text and "Trained for a test." in text
    assert ToyModel.from_pretrained(tmp_path / "toy")  # the folder still loads


def test_metrics_added_to_a_card_without_results(tmp_path):
    folder = make_model().save_pretrained(tmp_path / "toy", card={"model_name": "toy-small"})
    update_model_card_metrics(folder, {"dataset": "vctk",
                                       "metrics": [{"type": "wer", "value": 0.3}]})
    meta = front_matter((folder / "README.md").read_text())
    name, results = model_index_to_eval_results(meta["model-index"])
    assert name == "toy-small" and [r.metric_value for r in results] == [0.3]

    (folder / "README.md").unlink()  # a folder without a card gets one
    update_model_card_metrics(folder, {"dataset": "vctk",
                                       "metrics": [{"type": "wer", "value": 0.4}]})
    assert "| vctk |  | wer | 0.4 |" in (folder / "README.md").read_text()


def test_write_model_card_and_bad_metrics(tmp_path):
    path = write_model_card(tmp_path, model_type="test-toy", license="cc-by-4.0", tags=["x"])
    assert front_matter(path.read_text())["license"] == "cc-by-4.0"
    with pytest.raises(ValueError, match="metrics"):
        render_model_card(model_type="test-toy", metrics={"dataset": "vctk"})
    with pytest.raises(ValueError, match="front matter"):
        make_model().save_pretrained(tmp_path / "bad", card="---\n- a list\n---\nbody")


# ------------------------------------------------------------------ strict loading
def _edit_weights(folder: Path, edit) -> None:
    path = folder / "model.safetensors"
    state = safetensors.torch.load_file(path)
    edit(state)
    safetensors.torch.save_file(state, path)


@pytest.mark.parametrize("edit, message", [
    (lambda s: s.pop("head.bias"), r"missing keys: head\.bias"),
    (lambda s: s.update({"extra.weight": torch.zeros(2)}), r"unexpected keys: extra\.weight"),
    (lambda s: s.update({"head.weight": torch.zeros(3, 7)}),
     r"wrong shapes: head\.weight \(3, 7\)"),
])
def test_strict_loading_names_the_keys(tmp_path, edit, message):
    folder = make_model().save_pretrained(tmp_path / "toy")
    _edit_weights(folder, edit)
    with pytest.raises(CheckpointError, match=message):
        ToyModel.from_pretrained(folder)


def test_damaged_files_are_checkpoint_errors(tmp_path):
    folder = make_model().save_pretrained(tmp_path / "toy")
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(CheckpointError, match=r"model\.safetensors.*re-download"):
        load_model(folder)
    weights.unlink()
    with pytest.raises(CheckpointError, match=r"no model\.safetensors"):
        load_model(folder)

    folder = make_model().save_pretrained(tmp_path / "toy2")
    (folder / "config.json").write_text('{"model_type": "test-toy",')
    with pytest.raises(CheckpointError, match=r"config\.json is not valid JSON.*re-save"):
        load_model(folder)
    (folder / "config.json").unlink()
    with pytest.raises(CheckpointError, match=r"no config\.json"):
        load_model(folder)


def _rewrite_config(folder: Path, **changes) -> None:
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config))


def test_config_problems(tmp_path):
    folder = make_model().save_pretrained(tmp_path / "toy")
    with pytest.raises(CheckpointError,
                       match=r"holds a 'test-toy' model.*OtherToy.*'test-other-toy'"):
        OtherToy.from_pretrained(folder)

    _rewrite_config(folder, format_version=2)
    with pytest.raises(CheckpointError,
                       match=r"format 2 .*reads formats up to 1; upgrade voicelab"):
        load_model(folder)

    _rewrite_config(folder, format_version=1, model_type="no-such-type")
    with pytest.raises(CheckpointError,
                       match=r"unknown model_type 'no-such-type'.*test-other-toy, test-toy"):
        load_model(folder)

    _rewrite_config(folder, model_type="test-toy", dropout=0.1)
    with pytest.raises(CheckpointError, match=r"does not take: dropout"):
        load_model(folder)


# ------------------------------------------------------------------ atomic saves
def test_failed_save_keeps_the_old_model(tmp_path, monkeypatch):
    old = make_model(seed=1)
    folder = old.save_pretrained(tmp_path / "toy")
    (folder / "optimizer.pt").write_bytes(b"resume state")  # not ours: must survive

    def crash(state, path):
        Path(path).write_bytes(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(vc.hub.model, "write_weights", crash)
    with pytest.raises(OSError, match="disk full"):
        make_model(seed=2).save_pretrained(folder)
    x = torch.randn(2, MEL.n_mels)
    assert torch.equal(ToyModel.from_pretrained(folder)(x), old(x))
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md", "config.json", "model.safetensors", "optimizer.pt"]


def test_crash_while_swapping_leaves_a_folder_that_refuses_to_load(tmp_path, monkeypatch):
    folder = make_model(seed=1).save_pretrained(tmp_path / "toy")
    real_replace = os.replace

    def replace(src, dst):
        if Path(dst).name == "README.md":
            raise OSError("power cut")
        real_replace(src, dst)

    monkeypatch.setattr(vc.hub.folder.os, "replace", replace)
    with pytest.raises(OSError):
        make_model(seed=2).save_pretrained(folder)
    with pytest.raises(CheckpointError, match="no config.json"):
        load_model(folder)
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


# ------------------------------------------------------------------ name resolution
def test_unknown_name_lists_every_place_tried(tmp_path):
    with pytest.raises(ModelNotFoundError) as info:
        load_model("no-such-model")
    message = str(info.value)
    assert "no local folder 'no-such-model'" in message
    assert "no checkpoints/no-such-model in" in message and "VOICELAB_CHECKPOINTS" in message
    assert "not a Hub repo id" in message

    with pytest.raises(ModelNotFoundError,
                       match=r"Hub repo 'owner/nothing'.*offline: HF_HUB_OFFLINE=1"):
        load_model("owner/nothing")


def test_name_under_shipped_checkpoints(tmp_path):
    model = make_model(seed=3)
    model.save_pretrained(tmp_path / "shipped" / "toy-small")
    loaded = load_model("toy-small")
    x = torch.randn(2, MEL.n_mels)
    assert torch.equal(loaded(x), model(x))
    with pytest.raises(ModelNotFoundError, match=r"it has: toy-small"):
        load_model("toy-large")


def populate_hf_cache(cache: Path, repo_id: str, commit: str, folder: Path, refs=()) -> None:
    """Lay out `folder`'s files as snapshot_download leaves them: blobs + symlinked snapshot."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot, blobs = repo / "snapshots" / commit, repo / "blobs"
    snapshot.mkdir(parents=True)
    blobs.mkdir(exist_ok=True)
    for file in folder.iterdir():
        blob = blobs / hashlib.sha256(file.read_bytes()).hexdigest()
        shutil.copyfile(file, blob)
        (snapshot / file.name).symlink_to(os.path.relpath(blob, snapshot))
    for ref in refs:
        (repo / "refs").mkdir(exist_ok=True)
        (repo / "refs" / ref).write_text(commit)


def test_offline_hub_resolution_and_revision_pinning(tmp_path):
    cache = tmp_path / "hf-cache"
    old, new = make_model(seed=1), make_model(seed=2)
    old_commit, new_commit = "a" * 40, "b" * 40
    populate_hf_cache(cache, "owner/toy", old_commit, old.save_pretrained(tmp_path / "old"),
                      refs=["v1"])
    populate_hf_cache(cache, "owner/toy", new_commit, new.save_pretrained(tmp_path / "new"),
                      refs=["main"])
    x = torch.randn(2, MEL.n_mels)

    assert torch.equal(load_model("owner/toy")(x), new(x))  # default cache, refs/main
    assert torch.equal(load_model("owner/toy", revision="v1")(x), old(x))
    assert torch.equal(load_model(f"owner/toy@{old_commit}", cache_dir=cache)(x), old(x))
    assert torch.equal(ToyModel.from_pretrained("owner/toy", revision=new_commit)(x), new(x))
    assert load_config("owner/toy@v1")["model_type"] == "test-toy"
    with pytest.raises(ModelNotFoundError, match=r"revision 'v2'.*offline"):
        load_model("owner/toy@v2")
    with pytest.raises(VoicelabError, match="give one of them"):
        load_model("owner/toy@v1", revision="main")


def test_offline_is_read_at_call_time(monkeypatch):
    from vc.hub import is_hub_offline

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert is_hub_offline()
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    assert not is_hub_offline()


# ------------------------------------------------------------------ publishing
@pytest.fixture
def fake_hub(monkeypatch):
    """Stand-ins for the HfApi calls push_to_hub makes; records what they were given."""
    calls = []

    def create_repo(self, repo_id, **kwargs):
        calls.append(("create_repo", repo_id, self.token, kwargs))

    def create_branch(self, repo_id, **kwargs):
        calls.append(("create_branch", repo_id, self.token, kwargs))

    def upload_folder(self, **kwargs):
        folder = Path(kwargs["folder_path"])
        files = sorted(filter_repo_objects(
            sorted(p.name for p in folder.iterdir()), allow_patterns=kwargs["allow_patterns"]))
        calls.append(("upload_folder", kwargs["repo_id"], self.token,
                      {**kwargs, "uploaded": files,
                       "config": json.loads((folder / "config.json").read_text())}))
        return SimpleNamespace(commit_url=f"https://huggingface.co/{kwargs['repo_id']}/commit/123")

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "create_branch", create_branch)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    return calls


def test_push_folder_uploads_only_the_model_files(tmp_path, fake_hub, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    folder = make_model().save_pretrained(tmp_path / "toy")
    (folder / "optimizer.pt").write_bytes(b"resume state")
    token = "hf_secretTOKENvalue123"
    url = push_to_hub(folder, "owner/toy", token=token, private=True, revision="dev")

    assert url == "https://huggingface.co/owner/toy/commit/123"
    (_, repo, tok, create), (_, _, _, branch), (_, _, _, upload) = fake_hub
    assert (repo, tok, create) == ("owner/toy", token, {"private": True, "exist_ok": True})
    assert branch == {"branch": "dev", "exist_ok": True}
    assert Path(upload["folder_path"]) == folder and upload["revision"] == "dev"
    assert upload["uploaded"] == ["README.md", "config.json", "model.safetensors"]
    assert "test-toy" in upload["commit_message"]
    captured = capsys.readouterr()
    assert token not in captured.out + captured.err + caplog.text


def test_model_push_saves_then_uploads(tmp_path, fake_hub, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_fromTheEnvironment")
    url = make_model().push_to_hub("owner/toy", card={"datasets": ["vctk"]})
    assert url.endswith("/commit/123")
    assert [call[0] for call in fake_hub] == ["create_repo", "upload_folder"]  # no branch for main
    upload = fake_hub[-1]
    assert upload[2] is None  # no token given: huggingface_hub reads HF_TOKEN itself
    assert upload[3]["uploaded"] == ["README.md", "config.json", "model.safetensors"]
    assert upload[3]["config"]["model_type"] == "test-toy"


def test_push_refuses_a_folder_that_would_not_load(tmp_path, fake_hub):
    with pytest.raises(CheckpointError, match="no config.json"):
        push_to_hub(tmp_path, "owner/toy")
    assert fake_hub == []


# ------------------------------------------------------------------ legacy .pt import
class NotATensor:
    pass


def test_legacy_state_dict_import(tmp_path):
    model = make_model(seed=4)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    wrapped = {"model": {f"module.{k}": v for k, v in state.items()}, "step": 10}
    torch.save(wrapped, tmp_path / "old.pt")
    loaded = load_legacy_state_dict(tmp_path / "old.pt")
    assert loaded.keys() == state.keys()
    fresh = make_model(seed=5)
    fresh.load_weights(loaded, source="old.pt")
    x = torch.randn(2, MEL.n_mels)
    assert torch.equal(fresh(x), model(x))

    torch.save({"model": state, "extra": NotATensor()}, tmp_path / "pickled.pt")
    with pytest.raises(CheckpointError, match="will not unpickle"):
        load_legacy_state_dict(tmp_path / "pickled.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pt"):
        load_legacy_state_dict(tmp_path / "junk.pt")
    with pytest.raises(CheckpointError, match="no entry 'ema'"):
        load_legacy_state_dict(tmp_path / "old.pt", key="ema")
