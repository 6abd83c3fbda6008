"""The design lives in the repo: docs/METHODS.md has a section for every endpoint naming each of its API
parameters, every "docs/METHODS.md §N" the code cites exists, and nothing points outside the repository."""
from __future__ import annotations

import inspect
import re
import subprocess

from core import config

METHODS = config.ROOT / "docs" / "METHODS.md"
OUTSIDE = ".." + "/" + "shared"  # a sibling folder of the checkout, which a clone does not have


def sections() -> dict[str, str]:
    """{"§N": the section's text}"""
    text = METHODS.read_text()
    parts = re.split(r"^## (\d+)\. ", text, flags=re.M)
    return {f"§{number}": body for number, body in zip(parts[1::2], parts[2::2])}


def test_every_endpoint_and_parameter_is_documented():
    import app
    from core.models import Models

    found = sections()
    demo = app.build_demo(Models(), app.folders_from_environment())
    missing = []
    for event in demo.fns.values():
        fn = getattr(event.fn, "__wrapped__", None)
        if not event.api_name or fn is None:
            continue
        section = next((body for body in found.values() if f"`/{event.api_name}`" in body.splitlines()[0]), None)
        if section is None:
            missing.append(f"/{event.api_name}: no section")
            continue
        # null-text inversion takes every Prompt-to-Prompt parameter, which §0 lists
        shared = found["§0"] if "every parameter of §0" in section else ""
        missing += [f"/{event.api_name}: {name}" for name in inspect.signature(fn).parameters
                    if name != "progress" and f"`{name}`" not in section + shared]
    assert not missing, missing


def test_cited_sections_exist_and_nothing_points_outside_the_repo():
    files = subprocess.run(["git", "ls-files", "*.py", "*.md", "*.json", "*.toml", "*.txt", "*.yml", "*.cfg"],
                           cwd=config.ROOT, capture_output=True, text=True, check=True).stdout.split()
    found, cited, outside = sections(), set(), []
    for name in files:
        path = config.ROOT / name
        if not path.is_file():  # deleted in the working tree, not yet committed
            continue
        text = path.read_text(errors="replace")
        if name.endswith(".py"):  # the code's citations (docs/ADDING_A_METHOD.md's example adds a §18)
            cited |= set(re.findall(r"METHODS\.md\s+(§\d+)", text))
        if OUTSIDE in text:
            outside.append(name)
    assert cited and cited <= set(found), cited - set(found)
    assert not outside, outside


def test_the_readme_lists_every_group_and_endpoint():
    import tabs
    readme = (config.ROOT / "README.md").read_text()
    assert "docs/app.png" in readme and (config.ROOT / "docs" / "app.png").is_file()
    for group, (summary, members) in tabs.GROUPS.items():
        row = next((line for line in readme.splitlines() if line.startswith(f"| {group} |")), "")
        assert summary in row, group
        assert all(f"`/{tabs.key(tab)}" in row for tab in members), row
