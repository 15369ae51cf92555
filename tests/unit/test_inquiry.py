"""Inquiry numbers: readable alphabet, check symbol catching one typo or one adjacent swap."""

from __future__ import annotations

import re
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from freezedesk.domain import inquiry
from freezedesk.domain.errors import InvalidInquiryNumber
from freezedesk.domain.inquiry import ALPHABET, BODY_LENGTH, check_symbol, generate, normalize

PRINTED = re.compile(rf"^[{ALPHABET}]{{4}}-[{ALPHABET}]{{4}}-[{ALPHABET}]$")
bodies = st.text(alphabet=ALPHABET, min_size=BODY_LENGTH, max_size=BODY_LENGTH)


def compact(number: str) -> str:
    return number.replace("-", "")


def test_alphabet_has_31_distinct_symbols_and_no_confusable_ones() -> None:
    assert len(ALPHABET) == len(set(ALPHABET)) == 31
    for confusable in "0O1IL":
        assert confusable not in ALPHABET
    assert set(ALPHABET) == (set(string.digits) | set(string.ascii_uppercase)) - set("01OIL")


def test_generate_without_arguments_gives_a_valid_printed_number() -> None:
    numbers = {generate() for _ in range(200)}
    assert len(numbers) > 190  # 31**8 possibilities: collisions are practically impossible
    for number in numbers:
        assert PRINTED.match(number), number
        assert normalize(number) == number


def test_known_number_is_stable() -> None:
    # sum(i * value) over K7M3Q9TR with weights 1..8, then the check symbol at weight 9
    number = generate("K7M3Q9TR")
    assert number.startswith("K7M3-Q9TR-")
    values = [ALPHABET.index(ch) for ch in compact(number)]
    assert sum((i + 1) * v for i, v in enumerate(values)) % 31 == 0


@given(bodies)
def test_generated_numbers_are_printed_and_valid(body: str) -> None:
    number = generate(body)
    assert PRINTED.match(number)
    assert compact(number)[:BODY_LENGTH] == body
    assert compact(number)[-1] == check_symbol(body)
    assert inquiry.is_valid_compact(compact(number))
    assert normalize(number) == number


@given(bodies, st.data())
def test_round_trip_through_what_a_person_types(body: str, data: st.DataObject) -> None:
    number = generate(body)
    typed = ""
    for ch in compact(number):
        typed += ch.lower() if data.draw(st.booleans()) else ch
        typed += data.draw(st.sampled_from(["", "", " ", "-", "  ", "_"]))
    typed = data.draw(st.sampled_from(["", " "])) + typed
    assert normalize(typed) == number


@given(bodies)
def test_simple_variants_round_trip(body: str) -> None:
    number = generate(body)
    for typed in (number.lower(), compact(number), compact(number).lower(), " ".join(compact(number)),
                  f"  {number}  ", number.replace("-", " ")):
        assert normalize(typed) == number


@settings(deadline=None)
@given(bodies)
def test_every_single_substitution_is_rejected(body: str) -> None:
    good = compact(generate(body))
    for position in range(len(good)):
        for symbol in ALPHABET:
            if symbol == good[position]:
                continue
            typo = good[:position] + symbol + good[position + 1:]
            assert not inquiry.is_valid_compact(typo)
            with pytest.raises(InvalidInquiryNumber, match="typo"):
                normalize(inquiry.format_number(typo))


@settings(deadline=None)
@given(bodies)
def test_every_adjacent_transposition_of_different_symbols_is_rejected(body: str) -> None:
    good = compact(generate(body))
    for i in range(len(good) - 1):
        if good[i] == good[i + 1]:
            continue
        swapped = good[:i] + good[i + 1] + good[i] + good[i + 2:]
        with pytest.raises(InvalidInquiryNumber, match="typo"):
            normalize(swapped)


def test_transposition_including_the_check_symbol_is_rejected() -> None:
    # a body whose last symbol differs from its check symbol; swap them
    good = compact(generate("22222223"))
    assert good[-2] != good[-1]
    with pytest.raises(InvalidInquiryNumber):
        normalize(good[:-2] + good[-1] + good[-2])


outside = st.sampled_from(
    sorted(set(string.digits + string.ascii_uppercase + "#*+./:;!?@É×") - set(ALPHABET))
)


@given(bodies, st.integers(0, BODY_LENGTH), outside)
def test_symbol_outside_the_alphabet_is_named(body: str, position: int, bad: str) -> None:
    good = compact(generate(body))
    typed = good[:position] + bad + good[position + 1:]
    with pytest.raises(InvalidInquiryNumber) as info:
        normalize(typed)
    assert repr(bad) in str(info.value)
    assert info.value.type == "invalid-inquiry-number"


@pytest.mark.parametrize(("typed", "shown"), [("o", "O"), ("i", "I"), ("l", "L")])
def test_lower_case_confusables_are_named_in_upper_case(typed: str, shown: str) -> None:
    with pytest.raises(InvalidInquiryNumber) as info:
        normalize("K7M3-Q9TR-" + typed)
    assert repr(shown) in str(info.value)


@pytest.mark.parametrize("zero_or_one", ["0", "1", "O", "I", "L"])
def test_confusables_in_the_body_are_rejected(zero_or_one: str) -> None:
    good = compact(generate("K7M3Q9TR"))
    with pytest.raises(InvalidInquiryNumber, match=re.escape(repr(zero_or_one))):
        normalize(zero_or_one + good[1:])


@given(st.text(alphabet=ALPHABET, max_size=20).filter(lambda s: len(s) != BODY_LENGTH + 1))
def test_wrong_length_is_rejected(text: str) -> None:
    with pytest.raises(InvalidInquiryNumber, match="9 symbols"):
        normalize(text)


@pytest.mark.parametrize("typed", ["", "   ", "---", "K7M3-Q9TR", "K7M3-Q9TR-XX", "K7M3-Q9TR-X-2"])
def test_short_long_and_empty_inputs_are_rejected(typed: str) -> None:
    with pytest.raises(InvalidInquiryNumber):
        normalize(typed)


@given(bodies)
def test_number_with_one_symbol_dropped_or_added_is_rejected(body: str) -> None:
    good = compact(generate(body))
    with pytest.raises(InvalidInquiryNumber):
        normalize(good[:-1])
    with pytest.raises(InvalidInquiryNumber):
        normalize(good + good[0])


def test_full_width_input_from_a_japanese_ime_is_accepted() -> None:
    number = inquiry.generate()
    full_width = "".join(chr(ord(ch) + 0xFEE0) if ch != "-" else "ー" for ch in number)
    assert inquiry.normalize(full_width) == number
