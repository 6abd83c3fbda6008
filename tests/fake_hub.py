"""An offline Hugging Face cache laid out as the Hub client leaves it, for tests of the Hub loading paths
(HF_HUB_CACHE pointed at it, HF_HUB_OFFLINE=1)."""
from __future__ import annotations

import shutil
from pathlib import Path

COMMIT = "1" * 40


def fake_hub_repo(hub: Path, repo: str, files: dict[str, Path]) -> Path:
    """Put `files` (name in the repo → file here) into `hub` as the cached snapshot of `repo`'s main; returns
    the snapshot folder."""
    snapshot = Path(hub) / f"models--{repo.replace('/', '--')}" / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    for name, source in files.items():
        shutil.copyfile(source, snapshot / name)
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text(COMMIT)
    return snapshot
