"""The conversation status machine: one table decides every transition.

A conversation is ``open`` (people in charge, the bot silent) or ``concluded`` (the
bot in charge). Every transition that changes something writes one activity entry;
a no-op (opening an open conversation, concluding a concluded one, assigning someone
already assigned) writes none. What happens to the bot's run is named by ``bot``:

- ``suspend``   the run pauses where it is (``Opened`` event)
- ``interrupt`` the run ends (the customer asked for a human)
- ``conclude``  a run paused at an open_conversation block resumes from ``next``;
                otherwise it ends and ``PAPO_ON_CONCLUDE_FLOW`` starts (``Concluded``)
- ``none``      the run is untouched
"""
from __future__ import annotations

from dataclasses import dataclass

OPEN, CONCLUDED = "open", "concluded"
STATUSES = (OPEN, CONCLUDED)


@dataclass(frozen=True)
class Transition:
    activity: str  # the activity log's action name
    to: str | None  # status after; None = unchanged
    bot: str  # suspend | interrupt | conclude | none
    adds_user: bool = False
    removes_user: bool = False


TRANSITIONS: dict[str, Transition] = {
    # the flow reached an open_conversation block (the engine already suspended the run)
    "flow_open": Transition("opened_by_flow", OPEN, "none"),
    "reopen": Transition("reopened", OPEN, "suspend"),
    "open": Transition("opened", OPEN, "suspend"),
    "assign": Transition("assigned", OPEN, "suspend", adds_user=True),
    "agent_message": Transition("agent_message", OPEN, "suspend"),
    "handoff": Transition("handoff_requested", OPEN, "interrupt"),
    "conclude": Transition("concluded", CONCLUDED, "conclude"),
    "unassign_and_conclude": Transition("unassigned_and_concluded", CONCLUDED, "conclude",
                                        removes_user=True),
    "unassign": Transition("unassigned", None, "none", removes_user=True),
    # one step: ``user`` is assigned and the actor leaves the assignees (DESIGN §10.8)
    "transfer": Transition("transferred", OPEN, "suspend", adds_user=True, removes_user=True),
    "auto_conclude": Transition("auto_concluded", CONCLUDED, "conclude"),
    # the flow reached a conclude_conversation block: the run simply goes on
    "flow_conclude": Transition("concluded_by_flow", CONCLUDED, "none"),
}

# Actions people (agents and admins) may perform through the API and the inbox.
AGENT_ACTIONS = ("reopen", "open", "assign", "unassign", "conclude", "unassign_and_conclude",
                 "agent_message", "transfer")


@dataclass
class Plan:
    """The outcome of applying one action to a conversation."""

    status: str
    assignees: list[str]
    bot: str = "none"
    activity: dict | None = None  # None: a no-op, nothing to record
    changed: bool = False


def plan(action: str, status: str, assignees: list[str], actor: str, user: str | None = None) -> Plan:
    """Decide what ``action`` by ``actor`` does to a conversation in ``status``.

    ``user`` is the login being assigned or unassigned (defaults to ``actor``); for
    ``transfer`` the login receiving the conversation (the actor leaves the assignees).
    """
    transition = TRANSITIONS[action]
    target_user = user or actor
    leaving = actor if action == "transfer" else target_user
    new_assignees = list(assignees)
    detail: dict = {}
    if transition.adds_user and target_user not in new_assignees:
        new_assignees.append(target_user)
        detail["user"] = target_user
    if transition.removes_user and leaving in new_assignees and (leaving != target_user or not transition.adds_user):
        new_assignees.remove(leaving)
        if action == "transfer":
            detail["from_user"] = leaving
        else:
            detail["user"] = target_user
    if action == "transfer":
        detail["user"] = target_user
    new_status = transition.to or status
    status_changed = new_status != status
    assignees_changed = new_assignees != list(assignees)

    if action == "unassign_and_conclude" and not status_changed and assignees_changed:
        # Already concluded: only the unassignment happens.
        transition = TRANSITIONS["unassign"]
    if not status_changed and not assignees_changed:
        return Plan(status=status, assignees=new_assignees)
    bot = transition.bot if status_changed else "none"
    entry = {"actor": actor, "action": transition.activity, "from": status, "to": new_status,
             "detail": detail or None}
    return Plan(status=new_status, assignees=new_assignees, bot=bot, activity=entry, changed=True)
