"""A malformed playbook stops the program with one message naming file, field and problem."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from firebreak.cli import main
from firebreak.config.playbook import Playbook, load_playbook
from firebreak.config.settings import DEFAULT_PLAYBOOK
from firebreak.domain import Platform
from firebreak.errors import PlaybookError


def test_default_playbook_covers_the_brief(playbook: Playbook) -> None:
    assert set(playbook.brand.accounts) == set(Platform)
    ids = {t.id for t in playbook.crisis_types}
    assert {"offensive_post", "product_safety", "service_outage", "data_breach", "employee_misconduct",
            "external_disaster"} <= ids
    for t in playbook.crisis_types:
        assert {"en", "nl", "sv", "fr", "pl", "id"} <= set(t.keywords), t.id
    assert playbook.approval.required_roles[1] == ["comms", "legal"]
    assert playbook.publishing_order(Platform.MASTODON)[0] is Platform.MASTODON


def _write(tmp_path: Path, mutate) -> Path:  # type: ignore[no-untyped-def]
    raw = yaml.safe_load(DEFAULT_PLAYBOOK.read_text())
    mutate(raw)
    p = tmp_path / "playbook.yaml"
    p.write_text(yaml.safe_dump(raw, allow_unicode=True))
    return p


@pytest.mark.parametrize("mutate, field, words", [
    (lambda r: r["detection"].update(negative_share_threshold=1.7), "detection.negative_share_threshold", "less than or equal to 1"),
    (lambda r: r["escalation"]["policies"]["standard"]["levels"][0].update(targets=["nobody"]), "escalation", "unknown"),
    (lambda r: r["approval"]["required_roles"].update({1: ["comms", "ceo"]}), "approval.required_roles.1", "nobody holds"),
    (lambda r: r["brand"].update(colour="red"), "brand.colour", "Extra inputs are not permitted"),
    (lambda r: r["crisis_types"][0]["keywords"].update(xx=["a"]), "crisis_types.0.keywords", "unknown language"),
    (lambda r: r["crisis_types"][0].update(id="x" * 59), "crisis_types.0.id", "at most 58 characters"),
    (lambda r: r["engagement"]["offensive_terms"].update(xx=["a"]), "engagement.offensive_terms", "unknown language"),
    (lambda r: r["engagement"]["offensive_terms"].update(nl=["klootzak", " "]), "engagement.offensive_terms", "blank term in ['nl']"),
    (lambda r: r.pop("drill"), "drill", "Field required"),
])
def test_malformed_playbook_is_named(tmp_path: Path, mutate, field: str, words: str) -> None:  # type: ignore[no-untyped-def]
    path = _write(tmp_path, mutate)
    with pytest.raises(PlaybookError) as exc:
        load_playbook(path)
    msg = str(exc.value)
    assert str(path) in msg and field in msg and words in msg


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text("brand:\n  id: [unclosed\n")
    with pytest.raises(PlaybookError, match=r"bad.yaml.*line \d+"):
        load_playbook(p)


def test_cli_stops_at_start_with_one_clear_line(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    path = _write(tmp_path, lambda r: r["follow_up"]["cadence_minutes"].pop(4))
    assert main(["playbook", "check", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "follow_up.cadence_minutes" in err[0] and str(path) in err[0]


def test_every_playbook_field_is_documented() -> None:
    """docs/PLAYBOOK.md names every field of the schema (a new field needs a line there)."""
    from pathlib import Path

    from pydantic import BaseModel

    doc = (Path(__file__).resolve().parents[2] / "docs" / "PLAYBOOK.md").read_text()
    missing = []

    def walk(model: type[BaseModel]) -> None:
        for name, field in model.model_fields.items():
            if not any(p in doc for p in (f"`{name}`", f"`{name}.", f".{name}`", f".{name}.")):
                missing.append(f"{model.__name__}.{name}")
            for arg in getattr(field.annotation, "__args__", ()) + (field.annotation,):
                if isinstance(arg, type) and issubclass(arg, BaseModel):
                    walk(arg)

    walk(Playbook)
    assert not missing, missing


def _only_one_legal(r) -> None:  # type: ignore[no-untyped-def]
    r["people"] = [p for p in r["people"] if p["id"] != "lena"]


def test_a_plan_where_a_revision_leaves_a_role_unsignable_is_refused(tmp_path: Path) -> None:
    """With one legal approver, her rejection with suggested text makes her its author: she may
    not sign it and nobody else can. `playbook check` says so before a crisis finds out."""
    with pytest.raises(PlaybookError) as err:
        load_playbook(_write(tmp_path, _only_one_legal))
    assert "approval.required_roles.1" in str(err.value) and "ingrid" in str(err.value) and "legal" in str(err.value)
    assert main(["playbook", "check", str(_write(tmp_path, _only_one_legal))]) == 2
    # Without revisions the same people suffice.
    ok = load_playbook(_write(tmp_path, lambda r: (_only_one_legal(r), r["approval"].update(allow_revisions=False))))
    assert not ok.approval.allow_revisions


def test_one_person_cannot_fill_two_required_roles(tmp_path: Path) -> None:
    def one_person_both(r) -> None:  # type: ignore[no-untyped-def]
        r["people"] = [dict(r["people"][0], roles=["comms", "legal"]), *[p for p in r["people"][1:]
                                                                         if "legal" not in p["roles"] and
                                                                         "comms" not in p["roles"]]]
        r["drill"]["approvers"] = [r["people"][0]["id"]]
        r["groups"] = {g: [m for m in ms if m in {p["id"] for p in r["people"]}] for g, ms in r["groups"].items()}
    with pytest.raises(PlaybookError, match="different people"):
        load_playbook(_write(tmp_path, one_person_both))
