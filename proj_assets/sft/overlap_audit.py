"""An audit of train/test overlap written apart from the filter that removes it (`dataset.py`).

`no_test_overlap` must be able to fail when the filter has a bug, so it does not call the filter:
it normalises text its own way (casefold, every non-alphanumeric character a space), keeps the
test set as a dictionary of normalised items and a set of hashed word n-grams, and asks three
questions of each training text:
- **exact**: its normalised text *is* a test item;
- **contains**: a test item shorter than `n` words appears in it word for word;
- **n-gram**: it shares a word `n`-gram with a longer test item (the hash of the gram is in the
  test set's; blake2b, 64 bits: a false hit among a few thousand grams has odds of about 1e-13).
This is the same rule the filter applies (docs/sft.md, decontamination), by other code.
"""

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass


def normalise(text: str) -> list[str]:
    """Casefolded alphanumeric words (any other character separates words)."""
    return "".join(ch if ch.isalnum() else " " for ch in text.casefold()).split()


def gram_hash(words: Sequence[str]) -> bytes:
    return hashlib.blake2b(" ".join(words).encode(), digest_size=8).digest()


def gram_hashes(words: Sequence[str], n: int) -> set[bytes]:
    return {gram_hash(words[i : i + n]) for i in range(len(words) - n + 1)}


@dataclass(frozen=True)
class Overlap:
    row: int  # index into the training texts
    kind: str  # exact | contains | n-gram
    test_item: str  # the test text it overlaps (for n-gram: one test item holding the gram)


class OverlapAudit:
    """The test set indexed once; `find` audits any number of training texts against it."""

    def __init__(self, test_texts: Sequence[str], n: int):
        self.n = n
        self.exact: dict[str, str] = {}
        self.short: dict[str, str] = {}
        self.grams: dict[bytes, str] = {}
        for text in test_texts:
            words = normalise(text)
            self.exact[" ".join(words)] = text
            if len(words) < n:
                self.short[" ".join(words)] = text
            for digest in gram_hashes(words, n):
                self.grams.setdefault(digest, text)

    def overlap(self, row: int, text: str) -> Overlap | None:
        words = normalise(text)
        joined = " ".join(words)
        if joined in self.exact:
            return Overlap(row, "exact", self.exact[joined])
        padded = f" {joined} "
        for item, original in self.short.items():
            if item and f" {item} " in padded:
                return Overlap(row, "contains", original)
        for digest in gram_hashes(words, self.n):
            if digest in self.grams:
                return Overlap(row, "n-gram", self.grams[digest])
        return None

    def find(self, train_texts: Sequence[str]) -> list[Overlap]:
        """Every training text that overlaps the test set, in order."""
        found = (self.overlap(i, text) for i, text in enumerate(train_texts))
        return [o for o in found if o is not None]
