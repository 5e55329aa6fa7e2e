"""Block kinds, one sub-package each; the engine, linter and editor look kinds up here.

Adding a kind: a folder ``blocks/<type>/`` (``__init__.py`` with ``BLOCK``,
``schema.json``, ``form.html``, ``node.html``) and one line in :data:`REGISTRY`.
Everything else asks the registry (see :class:`blocks.base.BlockKind`); then
``python -m schemas.build`` refreshes the published ``schemas/flow.schema.json`` (the
running app assembles the schema from the registry itself).
"""
from blocks import (
    add_tag,
    business_hours,
    conclude_conversation,
    condition,
    http_request,
    jump,
    message,
    open_conversation,
    question,
    remove_tag,
    set_variable,
    wait,
)
from blocks.base import BlockKind, TimerKind

REGISTRY: dict[str, BlockKind] = {
    b.type: b
    for b in (
        message.BLOCK,
        question.BLOCK,
        condition.BLOCK,
        set_variable.BLOCK,
        wait.BLOCK,
        http_request.BLOCK,
        add_tag.BLOCK,
        remove_tag.BLOCK,
        jump.BLOCK,
        open_conversation.BLOCK,
        conclude_conversation.BLOCK,
        business_hours.BLOCK,
    )
}


def timer_kinds() -> dict[str, TimerKind]:
    """Every timer kind a block schedules, by name (the bot's timers; the service adds
    its own, such as ``auto_conclude``)."""
    return {timer.name: timer for kind in REGISTRY.values() for timer in kind.timers}


def pausing_kinds() -> set[str]:
    """Kinds at which a run stops until the customer, a timer or a person moves it."""
    return {name for name, kind in REGISTRY.items() if kind.pauses_run}
