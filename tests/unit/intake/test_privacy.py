"""BSN detection: the elfproef and the free-text scan."""

import pytest

from shared.privacy import contains_bsn, passes_elfproef


def make_bsn(prefix: str) -> str | None:
    """Complete 8 digits to a 9-digit number passing the 11-test, or None if no check digit fits.

    9*d1 + 8*d2 + ... + 2*d8 - 1*d9 must be divisible by 11, so d9 == weighted sum mod 11.
    """
    assert len(prefix) == 8 and prefix.isdigit()
    check = sum(int(d) * w for d, w in zip(prefix, range(9, 1, -1), strict=True)) % 11
    return prefix + str(check) if check <= 9 else None


def valid_bsns(start: int, count: int) -> list[str]:
    found = []
    for n in range(start, start + 1000):
        bsn = make_bsn(f"{n:08d}")
        if bsn:
            found.append(bsn)
        if len(found) == count:
            return found
    raise AssertionError("no valid BSNs found")


VALID = valid_bsns(12345678, 3) + valid_bsns(61234567, 2) + valid_bsns(90000000, 2)


def invalid_variant(bsn: str) -> str:
    """Change the check digit: the weighted sum then is off by 1..9, never a multiple of 11."""
    return bsn[:8] + str((int(bsn[8]) + 1) % 10)


def test_helper_matches_known_example():
    # 9*1+8*2+7*3+6*4+5*5+4*6+3*7+2*8 = 156; 156 mod 11 = 2
    assert make_bsn("12345678") == "123456782"


@pytest.mark.parametrize("bsn", VALID)
def test_valid_bsns_pass_the_elfproef(bsn):
    assert passes_elfproef(bsn)


@pytest.mark.parametrize("bsn", VALID)
def test_wrong_check_digit_fails(bsn):
    assert not passes_elfproef(invalid_variant(bsn))


@pytest.mark.parametrize("value", ["000000000", "12345678", "1234567820", "12345678a", "", "123 456 782"])
def test_elfproef_rejects_zeros_and_non_nine_digit_strings(value):
    assert not passes_elfproef(value)


@pytest.mark.parametrize("bsn", VALID)
def test_contains_bsn_finds_plain_and_grouped_spellings(bsn):
    spellings = [
        bsn,
        f"{bsn[:3]} {bsn[3:6]} {bsn[6:]}",
        f"{bsn[:3]}.{bsn[3:5]}.{bsn[5:7]}.{bsn[7:]}",
        f"{bsn[:4]}-{bsn[4:]}",
    ]
    for spelling in spellings:
        assert contains_bsn(f"Mijn nummer is {spelling}, graag hulp."), spelling


def test_contains_bsn_ignores_invalid_nine_digit_numbers():
    bad = invalid_variant(VALID[0])
    assert not passes_elfproef(bad)
    assert not contains_bsn(f"klantnummer {bad}")
    assert not contains_bsn(f"klantnummer {bad[:3]} {bad[3:6]} {bad[6:]}")


def test_contains_bsn_ignores_all_zeros():
    assert not contains_bsn("code 000000000")
    assert not contains_bsn("code 000 000 000")


def test_phone_number_is_not_flagged():
    assert not contains_bsn("bel mij op 0612345678")


def test_phone_number_hiding_a_valid_bsn_is_not_flagged():
    # The last nine digits of this 10-digit mobile number pass the elfproef on their own;
    # a 9-digit run inside a longer number must not count.
    bsn = next(b for b in VALID if b.startswith("6"))
    phone = "0" + bsn
    assert passes_elfproef(phone[1:])
    assert not contains_bsn(f"bel mij op {phone}")
    assert not contains_bsn(f"bel mij op {bsn}0")


def test_text_without_numbers_is_not_flagged():
    assert not contains_bsn("Hulp bij DigiD aanvragen")


def test_a_grouped_bsn_after_other_digit_groups_is_still_found():
    assert contains_bsn("klantnummer 999 123 456 782")
