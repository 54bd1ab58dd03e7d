"""merge_conditions: two writers of one conditions list, each replacing only its own entries."""

from __future__ import annotations

from tenant_crd.models import OPERATOR_CONDITIONS, SYNCED_CONDITION, merge_conditions


def cond(type_: str, status: str = "True", reason: str = "R") -> dict[str, str]:
    return {"type": type_, "status": status, "reason": reason}


def test_others_entries_keep_their_place_and_values() -> None:
    current = [cond("Ready"), cond(SYNCED_CONDITION, "False", "TenantUnreachable"), cond("StorageApplied")]
    got = merge_conditions(current, [cond("Ready", "False", "ApiserverUnreachable")], owned=OPERATOR_CONDITIONS)
    assert got == [cond("Ready", "False", "ApiserverUnreachable"), cond(SYNCED_CONDITION, "False", "TenantUnreachable")]


def test_the_syncer_replaces_only_synced() -> None:
    current = [cond("Ready"), cond("StorageApplied")]
    got = merge_conditions(current, [cond(SYNCED_CONDITION)], owned={SYNCED_CONDITION})
    assert got == [cond("Ready"), cond("StorageApplied"), cond(SYNCED_CONDITION)]
    again = merge_conditions(got, [cond(SYNCED_CONDITION, "False", "Syncing")], owned={SYNCED_CONDITION})
    assert again == [cond("Ready"), cond("StorageApplied"), cond(SYNCED_CONDITION, "False", "Syncing")]


def test_new_owned_types_are_appended_in_order_and_inputs_untouched() -> None:
    current = [cond(SYNCED_CONDITION)]
    ours = [cond("Ready"), cond("StorageApplied")]
    got = merge_conditions(current, ours, owned=OPERATOR_CONDITIONS)
    assert got == [cond(SYNCED_CONDITION), cond("Ready"), cond("StorageApplied")]
    got[0]["status"] = "False"
    assert current == [cond(SYNCED_CONDITION)]
