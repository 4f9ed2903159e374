"""Personal names (họ và tên): NFC, spacing and case normalisation, and a matching key.

Vietnamese names are family name first, then middle name(s), then given name. Source systems
store them upper case, without diacritics, with doubled spaces or in decomposed Unicode. The
normal form is NFC, single spaces, each word capitalised ("NGUYỄN  văn AN" → "Nguyễn Văn An");
the matching key folds case and diacritics (đ → d): "nguyen van an".
"""

from __future__ import annotations

import re
import unicodedata

from lienthong.dictionary.text import fold
from lienthong.validate.result import Check, Reason, fail

# Letters (any script, with combining marks), apostrophes and hyphens as in "H'Hen", "Ê-ban".
_ALLOWED = re.compile(r"[^\W\d_]+(?:['’\-][^\W\d_]+)*")
_cache: dict[str, Check[str]] = {}


_PART = re.compile(r"[^\W\d_]+")


def _capitalise(word: str) -> str:
    """Capitalise each letter run: 'h'hen' → "H'Hen", 'ê-ban' → 'Ê-Ban'."""
    return _PART.sub(lambda m: m[0][:1].upper() + m[0][1:].lower(), word)


def _check(value: str) -> Check[str]:
    text = unicodedata.normalize("NFC", value)
    words = text.split()
    if not words:
        return fail("name_empty", "name is empty")
    for word in words:
        if not _ALLOWED.fullmatch(word):
            return fail("name_invalid_chars", f"name word {word!r} has digits or symbols")
    normal = " ".join(_capitalise(w) for w in words)
    reasons: list[Reason] = []
    if len(words) == 1:
        reasons.append(Reason("name_single_word", "name has a single word", "warning"))
    if normal.isascii():
        reasons.append(
            Reason("name_no_diacritics", "name has no diacritics (maybe stripped)", "warning")
        )
    return Check(normal, tuple(reasons))


def check_name(value: object) -> Check[str]:
    """Normalise a full name. Codes: name_empty, name_invalid_chars; warnings
    name_single_word, name_no_diacritics."""
    if value is None:
        return fail("name_empty", "name is empty")
    text = str(value)
    hit = _cache.get(text)
    if hit is None:
        hit = _check(text)
        if len(_cache) < 500_000:
            _cache[text] = hit
    return hit


def name_key(value: str) -> str:
    """Diacritic-free, lower-case matching key: 'Đặng Thị Ánh' → 'dang thi anh'."""
    return fold(value)


def split_name(full_name: str) -> tuple[str, str, str]:
    """(family name, middle name, given name) of a normalised full name."""
    words = full_name.split()
    if not words:
        return ("", "", "")
    if len(words) == 1:
        return ("", "", words[0])
    return (words[0], " ".join(words[1:-1]), words[-1])


def join_name(family: str | None, middle: str | None, given: str | None) -> str:
    """Join split name fields (education systems keep them apart) into one full name."""
    return " ".join(part.strip() for part in (family, middle, given) if part and part.strip())
