"""The IDO may never process a BSN (burgerservicenummer). A BSN is nine digits that pass the
elfproef (11-test); we look for such numbers in all free text and refuse it before storing."""

import re

from pydantic import AfterValidator

# Nine digits, optionally written in groups ("123 456 782", "123.45.67.82"), not inside a longer
# number. A lookahead, so candidates may overlap: "999 123 456 782" still finds "123 456 782".
_CANDIDATE = re.compile(r"(?<![\d])(?=(\d(?:[ .-]?\d){8}(?![\d])))")


def passes_elfproef(digits: str) -> bool:
    if len(digits) != 9 or not digits.isdigit() or digits == "000000000":
        return False
    total = sum(int(d) * w for d, w in zip(digits[:8], range(9, 1, -1), strict=True)) - int(digits[8])
    return total % 11 == 0


def contains_bsn(text: str) -> bool:
    return any(passes_elfproef(re.sub(r"\D", "", m.group(1))) for m in _CANDIDATE.finditer(text))


def refuse_bsn(text: str) -> str:
    """Validator for free text fields: a BSN is refused with an explanation (never echoed)."""
    if contains_bsn(text):
        raise ValueError("contains what looks like a BSN; the IDO may not process a BSN, leave it out")
    return text


# Use on free text: Annotated[str, StringConstraints(max_length=...), NoBsn]
NoBsn = AfterValidator(refuse_bsn)
