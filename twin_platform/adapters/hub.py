"""Optional pushes to the Hugging Face Hub (``TWIN_HF_HUB_REPO``); nothing happens when it is unset."""

from __future__ import annotations

from pathlib import Path

from twin_platform.settings import Settings


def push_folder(settings: Settings, folder: Path, name: str, *, repo_type: str) -> str | None:
    """Upload ``folder`` to ``{hf_hub_repo}/{name}`` (private); returns its URL, or None when not configured."""
    if not settings.hf_hub_repo:
        return None
    from huggingface_hub import HfApi

    token = settings.hf_token.get_secret_value() if settings.hf_token else None
    api = HfApi(token=token)
    repo_id = f"{settings.hf_hub_repo.rstrip('/')}/{name}"
    api.create_repo(repo_id, repo_type=repo_type, private=True, exist_ok=True)
    api.upload_folder(repo_id=repo_id, folder_path=str(folder), repo_type=repo_type)
    prefix = "datasets/" if repo_type == "dataset" else ""
    return f"https://huggingface.co/{prefix}{repo_id}"
