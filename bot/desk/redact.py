"""Removing e-mail addresses and phone numbers from stored questions and answers before they reach reports or SFT
data (setting ``DESK_REDACT_PERSONAL_DATA``). English and Chinese formats: ``+1 (555) 010-2030``, ``020 7946 0958``,
``138 0013 8000``, ``+86 138-0013-8000``, ``(010) 6552 9988``, ``010-65529988``, full-width digits."""

from __future__ import annotations

import re
import unicodedata

EMAIL_MARK = "[email]"
PHONE_MARK = "[phone]"

EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", re.UNICODE)
PHONE = re.compile(  # not inside a longer word or number (Chinese text around a number is fine)
    r"(?<![\dA-Za-z_.])(?:\+|00)?(?:\(?\d{1,4}\)?[\s.\-‑–]?)?(?:\(?\d{2,4}\)?[\s.\-‑–]?)?\d{3,4}[\s.\-‑–]?\d{3,4}(?![\d])"
)
MIN_PHONE_DIGITS = 7
"""Fewer digits are dates, times, amounts or ids, not phone numbers."""


def redact(text: str) -> str:
    """``text`` with e-mail addresses and phone numbers replaced by ``[email]`` and ``[phone]``."""
    text = EMAIL.sub(EMAIL_MARK, text)
    return PHONE.sub(_phone, text)


def _phone(match: re.Match[str]) -> str:
    found = match.group(0)
    digits = sum(1 for ch in found if unicodedata.category(ch) == "Nd")
    return PHONE_MARK if digits >= MIN_PHONE_DIGITS else found
