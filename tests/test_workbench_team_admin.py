"""What admins do from the workbench (`workbench.team`), without a browser: every action checks
the role on the server; a bulk decision is counted, confirmed, refused when the filter changed
meanwhile, and undone; export runs `sif export`'s exporter on the filter and offers one zip."""

from __future__ import annotations

import json
import zipfile

import pytest

from db.store import Store
from db.team import StoreAccounts
from tests.support.workbench import copy_store
from workbench.service import Filters, Workbench
from workbench.serving import SignIn
from workbench.team import TeamActions


@pytest.fixture
def team(demo_db, tmp_path):
    store = Store.open(copy_store(demo_db, tmp_path / "sif.db"))
    store.add_user("ann", "curator", "ann-pw")
    store.add_user("root", "admin", "root-pw")
    return TeamActions(Workbench(store), SignIn(StoreAccounts(store)), tmp_path / "exports")


def test_curators_are_refused_admin_actions_on_the_server(team):
    store = team.store
    assert "Refused" in team.assign("ann", Filters(), "ann", 5) and store.queue("ann") == []
    message, waiting = team.bulk_count("ann", Filters(), "accepted")
    assert "Refused" in message and waiting is None
    assert "Refused" in team.export("ann", Filters(), "sft")[0]
    message, waiting = team.bulk_count("root", Filters(status="pending"), "accepted")
    assert waiting is not None and waiting.count == store.count(status="pending")
    assert "Refused" in team.bulk_apply("ann", waiting)[0] and store.count(status="accepted") == 0
    assert "Refused" in team.undo("ann", 1)


def test_a_bulk_decision_is_confirmed_on_the_count_shown_and_undone(team):
    store = team.store
    store.set_review(3, "rejected", reviewer="ann", expected_version=0, rev=store.current_chain(3).rev)
    before = {r.id: r.status for r in store.query(limit=1000)}
    message, waiting = team.bulk_count("root", Filters(dataset=store.datasets()[0]), "accepted")
    assert f"all {waiting.count} sample(s)" in message
    store.set_review(4, "needs_fix", reviewer="ann", expected_version=0, rev=store.current_chain(4).rev)
    message, batch = team.bulk_apply("root", waiting)  # still the same count: the filter has no status
    assert batch is not None and f"{waiting.count} sample(s) accepted by root" in message
    assert store.count(status="accepted") == waiting.count
    assert "earlier status back" in team.undo("root", batch)
    assert {r.id: r.status for r in store.query(limit=1000)} == {**before, 4: "needs_fix"}
    # A filter whose count changed after it was shown is not decided.
    message, waiting = team.bulk_count("root", Filters(status="pending"), "accepted")
    version = store.get_review(5).version
    store.set_review(5, "rejected", reviewer="ann", expected_version=version, rev=store.current_chain(5).rev)
    message, batch = team.bulk_apply("root", waiting)
    assert batch is None and "not the" in message and store.count(status="accepted") == 0


def test_export_runs_the_exporter_on_the_filter_and_offers_one_zip(team):
    store = team.store
    for sample_id in (1, 2, 3):
        store.set_review(
            sample_id, "accepted", reviewer="root", expected_version=0, rev=store.current_chain(sample_id).rev
        )
    message, manifest, archive = team.export("root", Filters(status="accepted"), "sft")
    assert archive is not None and archive.endswith(".zip"), message
    names = zipfile.ZipFile(archive).namelist()
    assert any(n.endswith("manifest.json") for n in names) and len(names) > 2
    assert json.loads(manifest)["kind"].startswith("sft")
    assert "Exported 3 sample(s) (sft)" in message
    message, _, archive = team.export("root", Filters(status="accepted", dataset=store.datasets()[0]), "sft")
    assert archive is None and "selects by status only" in message and "dataset" in message
