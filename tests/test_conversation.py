"""engine/conversation.py: every row of the transition table, from both statuses."""
from __future__ import annotations

import pytest

from engine import conversation as machine
from engine.conversation import CONCLUDED, OPEN, TRANSITIONS, plan

# action → (activity name, status after, what the bot does) when the status changes
TABLE = {
    "flow_open": ("opened_by_flow", OPEN, "none"),
    "reopen": ("reopened", OPEN, "suspend"),
    "open": ("opened", OPEN, "suspend"),
    "assign": ("assigned", OPEN, "suspend"),
    "agent_message": ("agent_message", OPEN, "suspend"),
    "handoff": ("handoff_requested", OPEN, "interrupt"),
    "conclude": ("concluded", CONCLUDED, "conclude"),
    "unassign_and_conclude": ("unassigned_and_concluded", CONCLUDED, "conclude"),
    "auto_conclude": ("auto_concluded", CONCLUDED, "conclude"),
    "flow_conclude": ("concluded_by_flow", CONCLUDED, "none"),
    "transfer": ("transferred", OPEN, "suspend"),
}


def test_the_table_has_exactly_these_rows():
    assert set(TRANSITIONS) == set(TABLE) | {"unassign"}
    assert set(machine.AGENT_ACTIONS) <= set(TRANSITIONS)


@pytest.mark.parametrize("action", sorted(TABLE))
def test_a_row_that_changes_the_status_records_it_and_names_the_bots_part(action):
    activity, to, bot = TABLE[action]
    start = CONCLUDED if to == OPEN else OPEN
    assignees = ["bia"] if action == "unassign_and_conclude" else []
    outcome = plan(action, start, assignees, actor="bia")
    assert outcome.changed and outcome.status == to and outcome.bot == bot
    assert outcome.activity["action"] == activity
    assert (outcome.activity["from"], outcome.activity["to"], outcome.activity["actor"]) == (start, to, "bia")


@pytest.mark.parametrize("action", sorted(a for a in TABLE if a not in ("assign", "unassign_and_conclude", "transfer")))
def test_a_row_whose_status_is_already_reached_is_a_no_op(action):
    _activity, to, _bot = TABLE[action]
    outcome = plan(action, to, ["ana"], actor="bia")
    assert not outcome.changed and outcome.activity is None
    assert outcome.status == to and outcome.assignees == ["ana"]


def test_assign_adds_the_user_and_opens():
    outcome = plan("assign", CONCLUDED, [], actor="ana", user="bia")
    assert (outcome.status, outcome.assignees, outcome.bot) == (OPEN, ["bia"], "suspend")
    assert outcome.activity["detail"] == {"user": "bia"}


def test_assign_on_an_open_conversation_only_adds_the_user_and_leaves_the_bot_alone():
    outcome = plan("assign", OPEN, ["ana"], actor="ana", user="bia")
    assert outcome.changed and outcome.assignees == ["ana", "bia"] and outcome.bot == "none"
    assert (outcome.activity["from"], outcome.activity["to"]) == (OPEN, OPEN)


def test_assigning_someone_already_assigned_is_a_no_op():
    assert not plan("assign", OPEN, ["bia"], actor="ana", user="bia").changed


def test_transfer_assigns_the_user_and_removes_the_actor_in_one_entry():
    outcome = plan("transfer", OPEN, ["bruno", "dani"], actor="bruno", user="carla")
    assert (outcome.status, outcome.assignees, outcome.bot) == (OPEN, ["dani", "carla"], "none")
    assert outcome.activity["action"] == "transferred"
    assert outcome.activity["detail"] == {"user": "carla", "from_user": "bruno"}


def test_transfer_to_someone_already_in_charge_by_a_non_assignee_is_a_no_op():
    assert not plan("transfer", OPEN, ["carla"], actor="bruno", user="carla").changed


def test_assign_defaults_to_the_actor():
    assert plan("assign", CONCLUDED, [], actor="ana").assignees == ["ana"]


def test_unassign_removes_the_user_and_keeps_the_status():
    outcome = plan("unassign", OPEN, ["ana", "bia"], actor="ana", user="bia")
    assert (outcome.status, outcome.assignees, outcome.bot) == (OPEN, ["ana"], "none")
    assert outcome.activity["action"] == "unassigned" and outcome.activity["detail"] == {"user": "bia"}


def test_unassigning_someone_not_assigned_is_a_no_op():
    assert not plan("unassign", OPEN, ["ana"], actor="ana", user="bia").changed


def test_unassign_and_conclude_on_a_concluded_conversation_only_unassigns():
    outcome = plan("unassign_and_conclude", CONCLUDED, ["bia"], actor="bia")
    assert outcome.changed and outcome.status == CONCLUDED and outcome.assignees == []
    assert outcome.activity["action"] == "unassigned" and outcome.bot == "none"


def test_unassign_and_conclude_by_someone_not_assigned_still_concludes():
    outcome = plan("unassign_and_conclude", OPEN, ["ana"], actor="bia")
    assert outcome.status == CONCLUDED and outcome.assignees == ["ana"]
    assert outcome.activity["action"] == "unassigned_and_concluded" and outcome.activity["detail"] is None


def test_concluding_keeps_the_assignees():
    assert plan("conclude", OPEN, ["ana"], actor="ana").assignees == ["ana"]


def test_plan_does_not_change_the_list_it_is_given():
    assignees = ["ana"]
    plan("assign", OPEN, assignees, actor="x", user="bia")
    plan("unassign", OPEN, assignees, actor="ana")
    assert assignees == ["ana"]
