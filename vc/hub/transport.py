"""Finding a model folder by name (local, shipped checkpoints/, Hub cache) and publishing one.

huggingface_hub does the transport: `snapshot_download` (which keeps the usual HF cache and
its revision refs) to fetch, `HfApi.create_repo` + `HfApi.upload_folder` to publish.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from huggingface_hub import HfApi, constants, snapshot_download
# Imported from huggingface_hub.utils, where every version since 0.23 (our floor) has them.
from huggingface_hub.utils import (
    HfHubHTTPError,
    HFValidationError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
    validate_repo_id,
)

from ..errors import ModelNotFoundError, VoicelabError
from .folder import CONFIG_NAME, MODEL_FILES, WEIGHTS_NAME, read_config, voicelab_version

logger = logging.getLogger(__name__)

# Newer huggingface_hub says when a cached snapshot lacks files; () catches nothing on older ones.
try:
    from huggingface_hub.errors import IncompleteSnapshotError as _IncompleteSnapshot
except ImportError:
    _IncompleteSnapshot = ()

CHECKPOINTS_ENV = "VOICELAB_CHECKPOINTS"
_TRUE = {"1", "true", "yes", "on"}


def checkpoints_dir() -> Path:
    """Where shipped models live: $VOICELAB_CHECKPOINTS, else `checkpoints/` at the repo root."""
    override = os.environ.get(CHECKPOINTS_ENV)
    if override:
        return Path(override).expanduser()
    return Path(__file__).resolve().parents[2] / "checkpoints"


def is_hub_offline() -> bool:
    """True when HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set.

    huggingface_hub reads the variable once, at import; reading it again here means setting it
    later in the process (a test, a notebook cell) still keeps us off the network.
    """
    env = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return bool(constants.HF_HUB_OFFLINE) or env.strip().lower() in _TRUE


def split_revision(name: str, revision: str | None = None) -> tuple[str, str | None]:
    """"owner/name@rev" -> ("owner/name", "rev"); a `revision` argument must agree with it."""
    repo_id, at, pinned = name.partition("@")
    if not at:
        return name, revision
    if revision is not None and revision != pinned:
        raise VoicelabError(f"{name!r} pins revision {pinned!r} but revision={revision!r} was also "
                            "given; give one of them")
    return repo_id, pinned


def resolve_model_dir(name: str | os.PathLike, revision: str | None = None, *,
                      cache_dir: str | os.PathLike | None = None, token: str | bool | None = None,
                      files: Sequence[str] = MODEL_FILES) -> Path:
    """The local folder that holds model `name`.

    Tried in order: (1) `name` as a local folder; (2) `checkpoints_dir()/name`; (3) a Hub repo
    id "owner/name" (optionally "owner/name@revision", or `revision=`), fetched into the HF
    cache (`cache_dir`, default the usual HF cache) by `snapshot_download`, which downloads
    only `files`. With HF_HUB_OFFLINE=1 the Hub step reads only the cache. `revision` (a
    branch, tag or commit) applies to the Hub step only.

    Raises:
        ModelNotFoundError: listing every place tried and why each failed.
    """
    text = os.fspath(name)
    local = Path(text).expanduser()
    if local.is_dir():
        return local
    tried = [f"no local folder {str(local)!r}" + (" (it is a file: pass the folder that holds it)"
                                                    if local.exists() else "")]

    shipped_root = checkpoints_dir()
    shipped = shipped_root / text
    if not local.is_absolute() and ".." not in Path(text).parts and shipped.is_dir():
        return shipped
    available = sorted(p.name for p in shipped_root.iterdir() if (p / CONFIG_NAME).is_file()) \
        if shipped_root.is_dir() else []
    tried.append(f"no checkpoints/{text} in {shipped_root}"
                 + (f" (it has: {', '.join(available)})" if available else "")
                 + f" (set ${CHECKPOINTS_ENV} to look elsewhere)")

    hub_result = _from_hub(text, revision, cache_dir=cache_dir, token=token, files=files)
    if isinstance(hub_result, Path):
        return hub_result
    tried.append(hub_result)
    raise ModelNotFoundError(f"cannot find model {text!r}: " + "; ".join(tried) + ".")


def _from_hub(name: str, revision: str | None, *, cache_dir, token, files) -> Path | str:
    """The snapshot folder, or a sentence saying why the Hub step failed."""
    repo_id, revision = split_revision(name, revision)
    try:
        if repo_id.count("/") != 1:
            raise HFValidationError("need exactly one '/'")
        validate_repo_id(repo_id)
    except HFValidationError:
        return f"{name!r} is not a Hub repo id (expected 'owner/name' or 'owner/name@revision')"
    offline = is_hub_offline()
    where = f"Hub repo {repo_id!r}" + (f" at revision {revision!r}" if revision else "")
    try:
        folder = snapshot_download(
            repo_id, revision=revision, cache_dir=cache_dir, token=token,
            allow_patterns=list(files), local_files_only=offline,
            library_name="voicelab", library_version=voicelab_version())
    except RevisionNotFoundError:
        return f"{where}: no such revision on the Hub"
    except RepositoryNotFoundError:
        return (f"{where} not found on the Hub (if it is private or gated, pass token= or set "
                "HF_TOKEN)")
    except _IncompleteSnapshot:
        return f"{where}: the cached copy is incomplete and the Hub cannot be reached to finish it"
    except LocalEntryNotFoundError:
        if offline:
            return f"{where} is not in the local Hugging Face cache (offline: HF_HUB_OFFLINE=1)"
        return f"{where} unreachable (no network?) and not in the local Hugging Face cache"
    except (HfHubHTTPError, OSError) as error:
        return f"{where} could not be fetched ({type(error).__name__}: {error})"
    return Path(folder)


def push_to_hub(folder_or_model, repo_id: str, *, token: str | None = None, private: bool = False,
                commit_message: str | None = None, revision: str | None = None,
                extra_patterns: Sequence[str] = ()) -> str:
    """Publish a model folder (or a model, saved first) to Hub repo `repo_id`.

    Returns the URL of the commit.

    The repo is created if needed, and one commit uploads config.json, model.safetensors and
    README.md (plus files matching `extra_patterns`), so resume checkpoints or logs that share
    the folder are never published by accident. `revision` names a branch (created if
    missing). The token comes from `token`, else huggingface_hub's own lookup (HF_TOKEN, then
    a stored login); it is only handed to huggingface_hub, never logged.
    """
    from .model import HubModel  # model.py imports this module

    if isinstance(folder_or_model, HubModel):
        return folder_or_model.push_to_hub(
            repo_id, token=token, private=private, commit_message=commit_message,
            revision=revision)
    folder = Path(folder_or_model)
    config = read_config(folder)  # refuse to publish a folder that would not load
    if not (folder / WEIGHTS_NAME).is_file():
        raise VoicelabError(f"{folder} has no {WEIGHTS_NAME}; save the model there first")
    api = HfApi(token=token, library_name="voicelab", library_version=voicelab_version())
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        if revision is not None and revision != constants.DEFAULT_REVISION:
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        commit = api.upload_folder(
            repo_id=repo_id, folder_path=folder, revision=revision,
            commit_message=commit_message or f"Upload voicelab {config['model_type']} model",
            allow_patterns=[*MODEL_FILES, *extra_patterns])
    except HfHubHTTPError as error:
        raise VoicelabError(
            f"pushing {folder} to Hub repo {repo_id!r} failed: {error}. Check that the token "
            "(token= or HF_TOKEN) has write access to that namespace.") from error
    logger.info("pushed %s to %s", folder, commit.commit_url)
    return commit.commit_url
