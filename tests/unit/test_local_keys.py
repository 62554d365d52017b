"""The --local-keys file: one seed stands for every pair's preshared key; listed keys still win."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from sitewire.errors import KeyFileError
from sitewire.keys import generate_preshared_key
from sitewire.spec.secrets import LocalKeys, derive_psk, load_local_keys, save_local_keys


def test_the_derivation_never_changes() -> None:
    # Every rendered network's preshared keys come from it: a change would cut every tunnel
    # at the next render. The value was computed once and is pinned.
    assert derive_psk(bytes(range(32)), "A+B") == "A/2WAA4LWFyYhuktzJQGs5tmaQ8p8hsJIvjZ1q6Auhw="


def test_a_pair_has_one_key_whichever_end_asks_and_each_pair_its_own() -> None:
    keys = LocalKeys()
    assert keys.ensure(("A", "B", "C"), [("A", "B")])
    ab, ba = keys.preshared_key("A", "B"), keys.preshared_key("B", "A")
    assert ab is not None and ab == ba and len(base64.b64decode(ab)) == 32
    assert len({ab, keys.preshared_key("A", "C"), keys.preshared_key("B", "C")}) == 3
    assert keys.preshared_keys == {}  # nothing per pair is stored
    other = LocalKeys()
    other.ensure((), [("A", "B")])
    assert other.preshared_key("A", "B") != ab  # another seed, other keys


def test_keys_survive_a_save_and_listed_ones_win(tmp_path: Path) -> None:
    listed = generate_preshared_key()
    keys = LocalKeys(preshared_keys={"A+B": listed})
    assert not keys.ensure((), [("A", "B")])  # every pair listed: no seed needed
    assert keys.psk_seed is None
    assert keys.ensure((), [("A", "B"), ("A", "C")])
    path = tmp_path / "keys.json"
    save_local_keys(path, keys)
    again, warnings = load_local_keys(path)
    assert warnings == []
    assert again.preshared_key("B", "A") == listed
    assert again.preshared_key("C", "A") == keys.preshared_key("A", "C")
    assert json.loads(path.read_text())["version"] == 2
    assert not again.ensure((), [("A", "B"), ("A", "C"), ("B", "C")])  # the seed covers it


def test_a_version_1_file_is_read_as_it_was(tmp_path: Path) -> None:
    listed = generate_preshared_key()
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({"version": 1, "preshared_keys": {"A+B": listed}}))
    path.chmod(0o600)
    keys, _ = load_local_keys(path)
    assert keys.preshared_key("A", "B") == listed and keys.psk_seed is None
    # A new node but no new pair: still version 1, which an older sitewire reads.
    assert keys.ensure(("C",), [("A", "B")])
    save_local_keys(path, keys)
    assert json.loads(path.read_text())["version"] == 1


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"version": 1, "psk_seed": "x"}, '"psk_seed" needs "version": 2'),
        ({"version": 2, "psk_seed": "c2VjcmV0"}, "psk_seed: is not a WireGuard key"),
        ({"version": 3}, 'expected "version": 2'),
    ],
)
def test_a_bad_seed_or_version_is_refused_without_echoing_it(
    tmp_path: Path, data: dict[str, object], message: str
) -> None:
    path = tmp_path / "keys.json"
    path.write_text(json.dumps(data))
    with pytest.raises(KeyFileError, match=message) as err:
        load_local_keys(path)
    assert "c2VjcmV0" not in str(err.value)


def test_a_sites_keys_at_once_are_the_keys_one_by_one() -> None:
    listed = generate_preshared_key()
    keys = LocalKeys(preshared_keys={"B+C": listed})
    peers = ["A", "C", "D", "b"]  # names before and after "B", and one that sorts after all
    assert keys.preshared_keys_with("B", peers) == [None, listed, None, None]  # no seed yet
    keys.ensure((), [("B", "D")])
    at_once = keys.preshared_keys_with("B", peers)
    assert at_once == [keys.preshared_key("B", p) for p in peers]
    assert at_once[1] == listed and None not in at_once
