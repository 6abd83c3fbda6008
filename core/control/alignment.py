"""Token bookkeeping for attention edits: which tokens a word is, and how the tokens of a
source prompt map onto those of a target prompt.

- Word swap ("a red circle" → "a blue circle"): words are paired by position; a word that
  becomes a different number of tokens spreads its attention evenly (a mapper matrix).
- Refinement ("a circle" → "a big circle"): a global alignment (longest common subsequence of
  tokens); tokens only in the target keep their own attention.
"""
from __future__ import annotations

import torch

from ..tokenizer import TOKENIZER_LOCK


def word_tokens(tokenizer, text: str) -> list[list[int]]:
    """Token ids of each whitespace-separated word of `text` (no specials)."""
    with TOKENIZER_LOCK:
        return [tokenizer.encode(word, add_special_tokens=False) for word in text.split()]


def token_positions(tokenizer, text: str, words) -> list[int]:
    """Positions (in the padded sequence, BOS = 0) of every token of the given words in `text`.

    `words` is a string of space/comma separated words or a list; matching is case-insensitive
    and a word can be a digit index into the prompt's words."""
    if isinstance(words, str):
        words = [w for w in words.replace(",", " ").split() if w]
    wanted = {w.lower() for w in words}
    positions, cursor = [], 1
    for index, (word, ids) in enumerate(zip(text.split(), word_tokens(tokenizer, text))):
        if word.lower().strip(".,!?;:") in wanted or str(index) in wanted:
            positions += list(range(cursor, cursor + len(ids)))
        cursor += len(ids)
    return [p for p in positions if p < tokenizer.model_max_length - 1]


def replacement_mapper(tokenizer, source: str, target: str) -> torch.Tensor:
    """M (L, L) with target_map[..., j] = Σ_i source_map[..., i]·M[i, j], for word swaps.

    Both prompts must have the same number of words."""
    length = tokenizer.model_max_length
    source_words, target_words = word_tokens(tokenizer, source), word_tokens(tokenizer, target)
    if len(source_words) != len(target_words):
        raise ValueError(f"word swap needs prompts with the same number of words "
                         f"({len(source_words)} vs {len(target_words)}); use edit_mode 'refine' instead")
    mapper = torch.zeros(length, length)
    mapper[0, 0] = 1.0  # BOS
    i = j = 1
    for src, tgt in zip(source_words, target_words):
        for b in range(len(tgt)):
            for a in range(len(src)):
                if i + a < length - 1 and j + b < length - 1:
                    # 1/len(target tokens), as the official: each source token's mass is shared over the target's
                    mapper[i + a, j + b] = 1.0 / len(tgt) if len(src) != len(tgt) else float(a == b)
        i, j = i + len(src), j + len(tgt)
    # EOS and padding follow in order, shifted by the token count difference. The official maps position j to j
    # after the last swapped word, so when a swapped word's token counts differ, every later token (and EOS)
    # takes a neighbour's attention; keeping them aligned is a fix. Target positions left over take the last one
    i, j = min(i, length - 1), min(j, length - 1)
    while j < length:
        mapper[min(i, length - 1), j] = 1.0
        i, j = i + 1, j + 1
    return mapper


def refinement_alignment(tokenizer, source: str, target: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(index, alpha), each (L,): target position j takes source position index[j] where
    alpha[j] = 1 (a token both prompts share, by longest common subsequence); alpha 0 = new token."""
    length = tokenizer.model_max_length
    src = [t for w in word_tokens(tokenizer, source) for t in w]
    tgt = [t for w in word_tokens(tokenizer, target) for t in w]
    # longest common subsequence by dynamic programming
    table = [[0] * (len(tgt) + 1) for _ in range(len(src) + 1)]
    for a in range(len(src) - 1, -1, -1):
        for b in range(len(tgt) - 1, -1, -1):
            table[a][b] = table[a + 1][b + 1] + 1 if src[a] == tgt[b] else max(table[a + 1][b], table[a][b + 1])
    index, alpha = torch.arange(length), torch.zeros(length)
    alpha[0] = 1.0
    a = b = 0
    while a < len(src) and b < len(tgt):
        if src[a] == tgt[b]:
            if b + 1 < length - 1:
                index[b + 1], alpha[b + 1] = a + 1, 1.0
            a, b = a + 1, b + 1
        elif table[a + 1][b] >= table[a][b + 1]:
            a += 1
        else:
            b += 1
    # EOS aligned with EOS; the padding after it at its own position, as the official get_refinement_mapper
    eos = len(tgt) + 1
    if eos < length:
        index[eos], alpha[eos] = min(len(src) + 1, length - 1), 1.0
    index[eos + 1:], alpha[eos + 1:] = torch.arange(eos + 1, length), 1.0
    return index, alpha


def word_alignment(tokenizer, source: str, target: str, mode: str = "auto") -> list[tuple[str, str]]:
    """What an edit does to each word of `target`, by the same alignment the edit runs: (word, "kept"), (word,
    "swap ← <source word>") for a word swap, (word, "added") for a word refinement brings in, (word, "changed")
    for a word only some of whose tokens the source shares. `mode`: replace, refine, or auto / reweight (replace
    when both prompts have as many words, as the edit decides)."""
    source_words, target_words = source.split(), target.split()
    if mode not in ("replace", "refine"):
        mode = "replace" if len(source_words) == len(target_words) else "refine"
    if mode == "replace":
        if len(source_words) != len(target_words):
            return [(word, "words differ in number: refine") for word in target_words]
        return [(t, "kept" if s.lower() == t.lower() else f"swap ← {s}") for s, t in zip(source_words, target_words)]
    _, alpha = refinement_alignment(tokenizer, source, target)
    out, cursor = [], 1
    for word, ids in zip(target_words, word_tokens(tokenizer, target)):
        shared = alpha[cursor:cursor + len(ids)]
        cursor += len(ids)
        out.append((word, "kept" if bool(shared.all()) else "added" if not bool(shared.any()) else "changed"))
    return out
