"""Text cleaning and folding, the same at training and at inference. ``normalise_batch`` and
``normalise`` undo the corpora's different anonymisation (user and link placeholders, emoji
stored as escaped UTF-16, long character repeats) with one pass of each regex over the
joined batch; ``fold`` is the case- and accent-insensitive form keyword matching works on
(é→e, ł→l, ö→o), with the table of letters that NFKD does not decompose.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

_URL = re.compile(r"https?://\S+|www\.\S+|\bURL\b")
_USER = re.compile(r"@\w+|\bUSER\b|@anonymized_account")
_REPEAT = re.compile(r"(.)\1\1\1+")
_HTTP = re.compile(r"https?://\S+")
_AT = re.compile(r"@\w+")
_UNI_ESC = re.compile(r"\\u([0-9a-fA-F]{4})")
_SEP = "\n\x01\n"  # \S+, \w+ and (.)\1{3,} cannot cross it; whitespace folding keeps the \x01


def _clean(text: str) -> str:
    if "\\u" in text:  # XLM-T stores emoji as escaped UTF-16 surrogate pairs
        text = _UNI_ESC.sub(lambda m: chr(int(m.group(1), 16)), text)
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if "www." in text or "URL" in text or "USER" in text:  # rare: corpus placeholders, bare links
        text = _USER.sub(" @user ", _URL.sub(" httpurl ", text))
    return text.replace("\x01", " ")


def normalise_batch(texts: Sequence[str]) -> list[str]:
    """The same cleaning at training and at inference: corpora anonymise differently.

    One pass of each (literal-prefixed, hence fast) regex over the joined batch, with a
    separator none of them can cross, instead of one pass per text.
    """
    big = _SEP.join([_clean(t) for t in texts])
    big = _AT.sub(" @user ", _HTTP.sub(" httpurl ", big))
    big = " ".join(_REPEAT.sub(r"\1\1\1", big.lower()).split())
    return [t.strip() for t in big.split("\x01")]


def normalise(text: str) -> str:
    return normalise_batch([text])[0]


# Letters that NFKD does not decompose; str.replace per pair is far faster than translate.
_FOLD_PAIRS = (("ł", "l"), ("Ł", "L"), ("ø", "o"), ("Ø", "O"), ("æ", "ae"), ("ß", "ss"), ("đ", "d"), ("’", "'"), ("‘", "'"))
_COMBINING = re.compile(r"[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]+")


def fold(text: str) -> str:
    """Case- and accent-insensitive form for keyword matching (é→e, ł→l, ö→o)."""
    for a, b in _FOLD_PAIRS:
        if a in text:
            text = text.replace(a, b)
    text = text.casefold()
    if text.isascii():
        return text
    return _COMBINING.sub("", unicodedata.normalize("NFKD", text))
