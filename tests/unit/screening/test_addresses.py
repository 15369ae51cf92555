"""Crypto address normalisation, validation and the exact-match index."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from freezedesk.screening.addresses import (
    CASE_INSENSITIVE,
    AddressIndex,
    b58decode,
    eip55,
    normalize_address,
)
from freezedesk.screening.lists import ftm, ofac_csv
from freezedesk.screening.model import DigitalAddress, Entity

from .listdata import FIXTURES, OFAC_DIR

# EIP-55's own test vectors.
EIP55 = ["0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
         "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB", "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb"]


@pytest.mark.parametrize("address", EIP55)
def test_evm_checksum_valid(address: str) -> None:
    norm = normalize_address(address, "ETH")
    assert (norm.chain_family, norm.canonical, norm.valid, norm.problem) == ("evm", address.lower(), True, None)
    assert eip55(address.lower()) == address
    assert normalize_address(address.lower()).valid and normalize_address("0x" + address[2:].upper()).valid


def test_evm_bad_checksum_and_bad_length() -> None:
    bad = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD"  # last letter's case flipped
    norm = normalize_address(bad)
    assert not norm.valid and norm.problem is not None and "EIP-55" in norm.problem
    assert norm.canonical == bad.lower()  # the same account: still found by lower case
    short = normalize_address("0xa7e5d5a720f06526557c513402f2e6b5fa20b00")  # as listed by OFAC (39 digits)
    assert (short.chain_family, short.valid) == ("evm", False) and "40 hex" in (short.problem or "")
    assert not normalize_address("0xZZ").valid


@pytest.mark.parametrize("address", [
    "BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4",  # BIP-173, upper case (valid: QR codes)
    "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",
    "tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7",
    "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0",  # BIP-350 taproot (bech32m)
    "ltc1qw508d6qejxtdg4y5r3zarvary0c5xw7kgmn4n9",  # the same program on Litecoin
])
def test_bech32_valid(address: str) -> None:
    norm = normalize_address(address)
    assert (norm.chain_family, norm.canonical, norm.valid) == ("bech32", address.lower(), True), norm.problem


@pytest.mark.parametrize(("address", "problem"), [
    ("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8F3t4", "mixes upper and lower case"),
    ("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t5", "checksum"),
    ("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kemeawh", "v0 needs bech32"),  # BIP-350: v0 with a bech32m checksum
])
def test_bech32_invalid(address: str, problem: str) -> None:
    norm = normalize_address(address)
    assert norm.chain_family == "bech32" and not norm.valid and problem in (norm.problem or "")
    assert norm.canonical == address.lower()


@pytest.mark.parametrize(("address", "currency"), [
    ("1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2", "XBT"), ("3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy", "XBT"),
    ("LWnbjLYUfqeokfbWM4FcU7uk2FP2DSxuWS", "LTC"), ("t1WSKwCDL1QYRRUrCCknEs5tDLhtGVYu9KM", "ZEC"),
    ("TNiq9AXBp9EjUqhDhrwrfvAA8U3GUQZH81", "USDT"), ("rHb9CJAWyB4rj91VRWn96DkukG4bwdtyTh", "XRP"),
])
def test_base58check_valid_keeps_case(address: str, currency: str) -> None:
    norm = normalize_address(f"  {address}\n", currency)
    assert (norm.chain_family, norm.canonical, norm.valid) == ("base58check", address, True)


def test_base58check_bad_checksum() -> None:
    norm = normalize_address("1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN3")
    assert (norm.chain_family, norm.valid, norm.problem) == ("base58check", False, "base58check checksum mismatch")
    assert not normalize_address("1bvbmseystwetqtfn5au4m4gfg7xjanvn2").valid  # case matters in base58


def test_cashaddr_solana_other_and_cleaning() -> None:
    cash = normalize_address("bitcoincash:qpm2qsznhks23z7629mms6s4cwef74vcwvy22gdx6a")
    assert (cash.chain_family, cash.canonical, cash.valid) == ("cashaddr", "qpm2qsznhks23z7629mms6s4cwef74vcwvy22gdx6a",
                                                               True)
    assert normalize_address("QPM2QSZNHKS23Z7629MMS6S4CWEF74VCWVY22GDX6A", "BCH").valid
    assert not normalize_address("bitcoincash:qpm2qsznhks23z7629mms6s4cwef74vcwvy22gdx6b").valid
    sol = normalize_address("11111111111111111111111111111111", "SOL")  # the system program: 32 zero bytes
    assert (sol.chain_family, sol.valid) == ("base58", True) and b58decode(sol.canonical) == bytes(32)
    xmr = "5be5543ff73456ab9f2d207887e2af87322c651ea1a873c5b25b7ffae456c320"
    assert normalize_address(xmr, "XMR") == normalize_address(xmr)
    assert (normalize_address(xmr).chain_family, normalize_address(xmr).canonical) == ("other", xmr)
    zero_width = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed\u200b"
    assert normalize_address(zero_width).canonical == EIP55[0].lower()
    uri = "ethereum:0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed@1?value=1"
    assert normalize_address(uri).canonical == EIP55[0].lower()
    assert normalize_address("   ").problem == "empty address"


@pytest.fixture(scope="module")
def listed() -> list[Entity]:
    return [*ofac_csv.load(OFAC_DIR), *ftm.load(FIXTURES / "ftm_entities.jsonl")]


@pytest.fixture(scope="module")
def index(listed: list[Entity]) -> AddressIndex:
    return AddressIndex.build(listed)


def test_every_listed_address_is_found_as_written(listed: list[Entity], index: AddressIndex) -> None:
    pairs = [(e.id, a) for e in listed for a in e.addresses]
    assert len(pairs) == 99  # 97 in the OFAC sample, 2 in the FtM fixture
    for entity_id, address in pairs:
        assert entity_id in {hit.entity_id for hit in index.find(address.address)}, address
    # The one malformed listing (39 hex digits) is indexed all the same, and reported.
    assert [p[0] for p in index.problems] == ["ofac-29702"]


def test_lookup_across_case_and_currencies(index: AddressIndex) -> None:
    eth = "0x7Db418b5D567A4e0E8c59Ad71BE1FcE48f3E6107"  # listed in EIP-55 form by OFAC (ofac-30518)
    for query in (eth, eth.lower(), eth.upper().replace("0X", "0x"), f" {eth.lower()} "):
        assert [h.entity_id for h in index.find(query)] == ["ofac-30518"]
    shared = index.find("0xd882cfc20f52f2599d84b8e8d58c7fb62cfe344b")  # one key, listed as ETH and as ETC
    assert {h.currency for h in shared} == {"ETH", "ETC"}
    assert index.find("BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4")[0].entity_id == "ftm-fixture-company-1"
    assert index.find("1FRyL9gmFGbzfYDAB4iY9836DJe3KSnjP9")  # base58: exact
    assert not index.find("1FRYL9GMFGBZFYDAB4IY9836DJE3KSNJP9")  # base58 is case-sensitive
    assert not index.find("0x0000000000000000000000000000000000000000")
    answer = index.lookup(eth.lower(), "ETH")
    assert answer["entity_ids"] == ["ofac-30518"] and answer["listed_currency"] == "ETH"
    assert (answer["canonical"], answer["valid"], answer["chain_family"]) == (eth.lower(), True, "evm")
    assert answer["listings"] == [{"entity_id": "ofac-30518", "currency": "ETH", "address": eth}]
    assert eth.lower() in index and "not an address" not in index


def test_empty_index() -> None:
    empty = AddressIndex.build([])
    assert len(empty) == 0 and empty.find("0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed") == ()
    single = AddressIndex.build([Entity("x-1", "x", "person", "A B", addresses=(DigitalAddress("ETH", EIP55[0]),))])
    assert len(single) == 1 and single.lookup(EIP55[0].upper().replace("0X", "0x"))["entity_ids"] == ["x-1"]


@pytest.fixture(scope="module")
def case_insensitive(listed: list[Entity]) -> list[tuple[str, str]]:
    """(entity id, address) of every listing whose chain ignores case (EVM, bech32, cashaddr)."""
    found = [(e.id, a.address) for e in listed for a in e.addresses
             if normalize_address(a.address, a.currency).chain_family in CASE_INSENSITIVE]
    assert len(found) == 14  # OFAC: 10 ETH, 1 ETC, 1 BCH cashaddr; FtM: 1 ETH, 1 bech32
    return found


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_listed_addresses_found_in_any_case(index: AddressIndex, case_insensitive: list[tuple[str, str]],
                                            data: st.DataObject) -> None:
    entity_id, address = data.draw(st.sampled_from(case_insensitive))
    flips = data.draw(st.lists(st.booleans(), min_size=len(address), max_size=len(address)))
    query = "".join(c.swapcase() if flip else c for c, flip in zip(address, flips, strict=True))
    assert entity_id in {hit.entity_id for hit in index.find(query)}
    assert entity_id in index.lookup(query)["entity_ids"]
