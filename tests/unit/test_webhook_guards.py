"""The webhook destination policy (SSRF guard) and the secret box, without I/O."""

from __future__ import annotations

import base64
import socket

import pytest

from freezedesk.notify.destinations import DestinationPolicy, WebhookUrlForbidden
from freezedesk.notify.secretbox import SecretBox, SecretKeyError, is_sealed, key_id, parse_key, sealed_key_id
from freezedesk.runtime import Settings

KEY = bytes(range(32))
OTHER = bytes(range(1, 33))


def resolver(table: dict[str, list[str]]):  # type: ignore[no-untyped-def]
    def resolve(host: str, port: int) -> list[str]:
        if host.lower() not in table:  # DNS names are case-insensitive
            raise socket.gaierror(socket.EAI_NONAME, "unknown")
        return table[host.lower()]
    return resolve


def reason(policy: DestinationPolicy, host: str, port: int = 443) -> str | None:
    try:
        policy.addresses(host, port)
    except WebhookUrlForbidden as exc:
        return exc.reason
    return None


def test_the_default_policy_allows_only_global_addresses() -> None:
    policy = DestinationPolicy(resolver=resolver({
        "public.example": ["93.184.215.14", "2606:4700::1111"], "rebound.example": ["93.184.215.14", "10.0.0.1"],
        "scoped.example": ["fe80::1%eth0"]}))
    assert policy.addresses("public.example", 443) == ["93.184.215.14", "2606:4700::1111"]
    assert reason(policy, "rebound.example") == "private"
    assert reason(policy, "scoped.example") == "link-local"
    assert reason(policy, "[::ffff:10.1.1.1]") == "private"
    assert reason(policy, "::ffff:8.8.8.8") is None
    assert reason(policy, "2002:a9fe:a9fe::1") == "link-local"  # 6to4 around 169.254.169.254
    assert reason(policy, "64:ff9b::7f00:1") is not None  # NAT64 around 127.0.0.1
    with pytest.raises(socket.gaierror):
        policy.addresses("nowhere.example", 443)


def test_the_allowlist_takes_names_addresses_and_networks() -> None:
    policy = DestinationPolicy(["receiver.internal.", " 10.20.0.0/16", "[::1]", "", "127.0.0.1"],
                               resolver=resolver({"receiver.internal": ["192.168.5.5"], "db.internal": ["10.20.3.4"],
                                                  "other.internal": ["192.168.5.5"]}))
    assert policy.addresses("RECEIVER.internal", 80) == ["192.168.5.5"]  # the name is trusted
    assert policy.addresses("db.internal", 80) == ["10.20.3.4"]  # the network is
    assert reason(policy, "other.internal") == "private"  # the same address by another name is not
    assert reason(policy, "::1") is None and reason(policy, "127.0.0.1") is None
    assert reason(policy, "127.0.0.2") == "loopback"
    assert reason(policy, "10.21.0.1") == "private"
    policy.check_url("http://10.20.9.9:8080/x")
    policy.check_url("http://[::1]:8080/x")


@pytest.mark.parametrize(("url", "why"), [
    ("ftp://a.example/x", "scheme"), ("javascript:alert(1)", "scheme"), ("HTTPS://u:p@a.example/", "credentials"),
    ("http://@a.example/", "credentials"), ("http://a.example:99999/", "malformed"),
    ("http://[fe80::1%25eth0]/", "link-local"), ("http://169.254.169.254./", "link-local"),
])
def test_static_refusals_need_no_dns(url: str, why: str) -> None:
    policy = DestinationPolicy(resolver=resolver({"169.254.169.254.": ["169.254.169.254"]}))
    with pytest.raises(WebhookUrlForbidden) as refused:
        policy.check_url(url)
    assert refused.value.reason == why and refused.value.type == "webhook-url-forbidden"


def test_sealed_values_open_only_with_their_key_and_context() -> None:
    box = SecretBox(KEY)
    sealed = box.seal("whsec_abc", "webhook-secret:whk_1")
    assert is_sealed(sealed) and sealed.startswith(f"fdenc:v1:{key_id(KEY)}:") and "whsec_abc" not in sealed
    assert box.seal("whsec_abc", "webhook-secret:whk_1") != sealed  # random nonce
    assert box.open(sealed, "webhook-secret:whk_1") == "whsec_abc"
    with pytest.raises(SecretKeyError, match="another record"):
        box.open(sealed, "webhook-secret:whk_2")
    head, blob = sealed.rsplit(":", 1)
    raw = bytearray(base64.urlsafe_b64decode(blob))
    raw[14] ^= 1
    with pytest.raises(SecretKeyError, match="altered"):
        box.open(f"{head}:{base64.urlsafe_b64encode(bytes(raw)).decode()}", "webhook-secret:whk_1")
    with pytest.raises(SecretKeyError, match=f"key id {key_id(KEY)}"):
        SecretBox(OTHER).open(sealed, "webhook-secret:whk_1")
    rotated = SecretBox(OTHER, [KEY])
    assert rotated.open(sealed, "webhook-secret:whk_1") == "whsec_abc"
    assert rotated.needs_reseal(sealed) and rotated.needs_reseal("whsec_clear")
    assert not box.needs_reseal(sealed)
    assert sealed_key_id(rotated.seal("x", "c")) == key_id(OTHER)


def test_keys_are_32_bytes_in_hex_or_base64_and_never_echoed() -> None:
    assert parse_key(KEY.hex()) == KEY
    assert parse_key(base64.b64encode(KEY).decode()) == KEY
    assert parse_key(base64.urlsafe_b64encode(KEY).decode().rstrip("=") + "\n") == KEY
    for bad in ("s3cr3t-passphrase", base64.b64encode(KEY[:16]).decode(), KEY.hex()[:-2]):
        with pytest.raises(SecretKeyError) as refused:
            SecretBox.from_settings(bad)
        assert bad not in str(refused.value)
    assert SecretBox.from_settings(None) is None and SecretBox.from_settings("  ") is None
    with pytest.raises(SecretKeyError, match="PREVIOUS"):
        SecretBox.from_settings(None, [KEY.hex()])
    settings = Settings(secret_key=KEY.hex(), previous_secret_keys=(OTHER.hex(),))
    assert KEY.hex() not in repr(settings) and OTHER.hex() not in repr(settings)
    assert KEY.hex() not in repr(SecretBox(KEY))
