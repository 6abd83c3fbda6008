"""Derive the real CLIP BPE tokenizer files (vocab.json, merges.txt) from the merges list that
the `openai-clip` package ships, so the embedded models tokenize prompts exactly as SD1.5 does.

    python scripts/make_clip_tokenizer.py [--out assets/tokenizer]

The package itself cannot be imported here (it needs torchvision and pkg_resources), so only
its data file is read. The construction follows CLIP's SimpleTokenizer: the 256 byte-level
characters, the same with the end-of-word mark, one token per merge, then the two specials.
"""
from __future__ import annotations

import argparse
import gzip
import importlib.util
import json
from pathlib import Path

NUM_MERGES = 49152 - 256 - 2  # CLIP's vocabulary is 49408 = 2·256 + merges + 2 specials


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP reversible byte → printable-character table."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, chars)))


def bpe_file() -> Path:
    spec = importlib.util.find_spec("clip")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("the openai-clip package is not installed: pip install openai-clip==1.0.1")
    return Path(spec.submodule_search_locations[0]) / "bpe_simple_vocab_16e6.txt.gz"


def build(out: Path) -> None:
    lines = gzip.open(bpe_file()).read().decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1:NUM_MERGES + 1]]
    byte_chars = list(bytes_to_unicode().values())
    vocab = byte_chars + [c + "</w>" for c in byte_chars] + ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    out.mkdir(parents=True, exist_ok=True)
    (out / "vocab.json").write_text(json.dumps({tok: i for i, tok in enumerate(vocab)}, ensure_ascii=False))
    (out / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n")
    print(f"wrote {len(vocab)} tokens and {len(merges)} merges to {out}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "assets" / "tokenizer")
    build(parser.parse_args().out)
