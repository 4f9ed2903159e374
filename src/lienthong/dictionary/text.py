"""Text helpers shared by the category lists and the validators (pure, stdlib only).

Vietnamese text arrives from source systems in every shape: NFD from macOS, upper case without
diacritics from old COBOL-era systems, doubled spaces. ``fold`` gives one diacritic-free,
lower-case key (đ → d) so that names and places can be matched whatever shape they came in.
"""

from __future__ import annotations

import re
import unicodedata

# đ/Đ are letters of their own, not d + a combining mark, so NFD does not strip them; old
# fonts and OCR often put the Icelandic Ð (U+00D0) where Đ (U+0110) belongs.
_FOLD_TABLE = str.maketrans({"đ": "d", "Đ": "d", "\u00d0": "d"})
_cache: dict[str, str] = {}
_NON_ALNUM = re.compile(r"[^0-9a-z]+")


def nfc(text: str) -> str:
    """Return ``text`` in Unicode NFC (composed) form."""
    return unicodedata.normalize("NFC", text)


def strip_diacritics(text: str) -> str:
    """Remove Vietnamese diacritics (tones and vowel marks; đ → d), keeping case."""
    decomposed = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def fold(text: str) -> str:
    """Diacritic-free, lower-case, single-spaced key of ``text`` (memoised: few distinct values)."""
    hit = _cache.get(text)
    if hit is not None:
        return hit
    decomposed = unicodedata.normalize("NFD", text.translate(_FOLD_TABLE).lower())
    key = " ".join("".join(ch for ch in decomposed if not unicodedata.combining(ch)).split())
    if len(_cache) < 200_000:
        _cache[text] = key
    return key


def compact_key(text: str) -> str:
    """``fold`` keeping only a–z and 0–9: 'Bà Rịa – Vũng Tàu' → 'bariavungtau', "H'Leo" → 'hleo'."""
    return _NON_ALNUM.sub("", fold(text))


# Unit-type words and their usual abbreviations ("Q.9", "TX. Sơn Tây", "P Long Bình").
_TYPE_PREFIX = re.compile(
    r"^(thanh pho|thi xa|thi tran|tinh|quan|huyen|phuong|xa|dac khu|tp|tx|tt|q|h|p|x)(\.\s*|\s+)"
)


def name_keys(name: str) -> list[str]:
    """Compact keys of a unit name as written, and without its type word or abbreviation."""
    folded = fold(name)
    short = _TYPE_PREFIX.sub("", folded, count=1)
    return list(dict.fromkeys((compact_key(folded), compact_key(short))))


_TYPE_PREFIX_ACCENTED = re.compile(
    r"^(thành phố|thị xã|thị trấn|tỉnh|quận|huyện|phường|xã|đặc khu|tp|tx|tt|q|h|p|x)(\.\s*|\s+)"
)
_NON_WORD = re.compile(r"[\W_]+")


def exact_keys(name: str) -> list[str]:
    """Like ``name_keys`` but keeping diacritics, to tell 'Văn Lăng' from 'Văn Lang'."""
    low = " ".join(nfc(name).lower().split())
    short = _TYPE_PREFIX_ACCENTED.sub("", low, count=1)
    return list(dict.fromkeys((_NON_WORD.sub("", low), _NON_WORD.sub("", short))))
