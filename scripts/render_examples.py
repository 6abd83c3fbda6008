"""Render each tab's first example on the embedded model, so the page shows a result before anyone presses Run:

    python scripts/render_examples.py            # every tab (about 15 min on 2 CPU cores)
    python scripts/render_examples.py p2p face0  # some

Each tab's first example runs through its own handler, as the Examples button would run it; the first picture
or video it returns goes to assets/examples/results/<tab>.png|.mp4, and manifest.json records the example's
values and a digest of the embedded models' weights (tests/test_example_results.py checks both against the
current code and files).
"""
from __future__ import annotations

import hashlib
import inspect
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core import config  # noqa: E402


def models_digest() -> str:
    """sha256 over every weight file of the embedded models (path and bytes)."""
    digest = hashlib.sha256()
    for path in sorted(config.MODELS_DIR.rglob("*.safetensors")):
        digest.update(str(path.relative_to(config.MODELS_DIR)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def portable(value):
    """An example's value as the manifest keeps it: files of assets/examples by name."""
    if isinstance(value, list):
        return [portable(v) for v in value]
    if isinstance(value, str) and value.startswith(str(config.EXAMPLES_DIR)):
        return Path(value).name
    return value


def as_picture(value):
    """An image (array or PIL image, → uint8 array) or a picture/video file (→ its path); None otherwise."""
    from PIL import Image

    if isinstance(value, dict):
        value = value.get("video") or value.get("path")
    if isinstance(value, (tuple, list)) and value:  # a gallery: (image, caption) items
        return as_picture(value[0][0] if isinstance(value[0], (tuple, list)) else value[0])
    if isinstance(value, Image.Image):
        return np.asarray(value.convert("RGB"))
    if isinstance(value, np.ndarray) and value.ndim == 3:
        return value
    if isinstance(value, (str, Path)) and Path(value).suffix.lower() in (".png", ".jpg", ".webp", ".mp4"):
        return Path(value)
    return None


def result_picture(outputs):
    """What a handler's outputs show first: a video, or its first picture beside the next ones of the same size
    (P2P's source and edit, FreeDoM's guided and unguided samples)."""
    found = [p for p in map(as_picture, outputs if isinstance(outputs, (tuple, list)) else (outputs,)) if p is not None]
    if not found or isinstance(found[0], Path):
        return found[0] if found else None
    row = [found[0]]
    for picture in found[1:]:
        if not isinstance(picture, np.ndarray) or picture.shape != found[0].shape:
            break
        row.append(picture)
    return np.concatenate(row, axis=1)


def run_first_example(example):
    """The handler's last output for the example's values (a generator's intermediate outputs skipped)."""
    result = example.fn.__wrapped__(**dict(zip(example.names, example.values)))
    if inspect.isgenerator(result):
        last = None
        for last in result:
            pass
        result = last
    return result


def main(wanted: list[str]) -> None:
    from PIL import Image

    import app
    import tabs
    from core.models import Models
    from tabs import common

    out = common.EXAMPLE_RESULTS
    out.mkdir(parents=True, exist_ok=True)
    manifest = json.loads(common.EXAMPLE_MANIFEST.read_text()) if common.EXAMPLE_MANIFEST.is_file() else {}
    digest = models_digest()
    with tempfile.TemporaryDirectory() as scratch:  # directions and tuned models made by examples stay out of runs/
        scratch = Path(scratch)
        folders = config.Folders(outputs=scratch / "outputs", directions=scratch / "directions",
                                 tuned_video=scratch / "tuned")
        models = Models()
        app.build_demo(models, folders)
        for key in map(tabs.key, tabs.ALL):
            if wanted and key not in wanted:
                continue
            example = common.FIRST_EXAMPLES[key]
            started = time.time()
            picture = result_picture(run_first_example(example))
            if picture is None:
                raise RuntimeError(f"{key}: its first example returned no picture or video")
            for old in out.glob(f"{key}.*"):
                old.unlink()
            if isinstance(picture, Path):
                target = out / f"{key}{picture.suffix.lower()}"
                shutil.copyfile(picture, target)
            else:
                target = out / f"{key}.png"
                Image.fromarray(picture).save(target)
            manifest[key] = {"file": target.name, "base_model": models.base_model, "models_sha256": digest,
                             "example": dict(zip(example.names, map(portable, example.values)))}
            print(f"{key}: {target.name} ({target.stat().st_size / 1024:.0f} KiB) in {time.time() - started:.0f} s",
                  flush=True)
            common.EXAMPLE_MANIFEST.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
