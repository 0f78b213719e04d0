"""`sif users add|list`: the password is prompted twice (never an option) and only its salted
argon2 hash is kept, in the store or in an auth file."""

from __future__ import annotations

import json

import pytest

from db.store import Store
from db.team import AuthFile
from tests.support.team import copy_store, sif, synth_store


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    return synth_store(tmp_path_factory.mktemp("users"), n=2)


@pytest.fixture
def db(template, tmp_path):
    return copy_store(template, tmp_path)


def test_users_in_the_store(db):
    result = sif("users", "add", "ann", "--role", "curator", db=db, input="s3cret\ns3cret\n")
    assert result.exit_code == 0, result.output
    assert sif("users", "add", "root", "--role", "admin", db=db, input="adm\nadm\n").exit_code == 0
    assert sif("users", "list", db=db).output.split() == ["ann", "curator", "root", "admin"]
    with Store.open(db) as store:
        assert store.verify_user("ann", "s3cret") == "curator"
        assert store.verify_user("ann", "adm") is None
        hashes = [r[0] for r in store.conn.execute("SELECT password_hash FROM users")]
    assert all(h.startswith("$argon2id$") for h in hashes) and "s3cret" not in "".join(hashes)


def test_users_in_an_auth_file(db, tmp_path):
    auth = tmp_path / "auth.json"
    result = sif("users", "add", "bob", "--role", "admin", "--auth-file", str(auth), input="pw1\npw1\n")
    assert result.exit_code == 0, result.output
    assert AuthFile(auth).verify_user("bob", "pw1") == "admin"
    assert "pw1" not in auth.read_text() and json.loads(auth.read_text())["users"]["bob"]["role"] == "admin"
    assert sif("users", "list", "--auth-file", str(auth)).output.split() == ["bob", "admin"]
    with Store.open(db) as store:
        assert store.users() == []


def test_mismatched_passwords_bad_roles_and_no_password_option(db):
    result = sif("users", "add", "ann", db=db, input="one\ntwo\none\none\n")
    assert result.exit_code == 0 and "do not match" in result.output  # asked again
    bad = sif("users", "add", "cid", "--role", "boss", db=db, input="x\nx\n")
    assert bad.exit_code == 1 and "--role: 'boss'" in bad.output
    no_option = sif("users", "add", "cid", "--password", "x", db=db)
    assert no_option.exit_code == 2 and "No such option" in no_option.output
    with Store.open(db) as store:
        assert store.users() == [("ann", "curator")]
