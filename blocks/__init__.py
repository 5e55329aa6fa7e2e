"""Block kinds, one sub-package each; the engine, linter and editor look kinds up here."""
from blocks import (
    add_tag,
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
from blocks.base import BlockKind

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
    )
}
