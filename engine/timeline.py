"""How stored messages read in a conversation's JSON (DESIGN §6, §10.6, §10.7).

A message is ``{"id", "direction", "author", "text", "buttons", "at"}`` plus, when its
``details`` (``messages.details``, written by ``engine/whatsapp_inbound.py``) say so:

- ``media``: ``{"type", "mime", "id", "caption"}`` (``filename`` for documents), or a
  location ``{"type": "location", "latitude", "longitude", "name", "address"}``;
- ``contacts`` (shared contact cards), ``order`` (a catalog order), ``referral`` (the ad
  the customer came from), ``referred_product`` (the product they asked about),
  ``forwarded: true``;
- ``reply_to``: ``{"id", "text"}`` of the message it answers (``id`` null when papo does
  not have that message);
- ``reaction``: ``{"emoji", "at"}``, the customer's reaction to it;
- ``deleted: true`` (the customer deleted it; its content is gone) and ``edited: true``
  with ``edits``: the earlier texts, oldest first, ``[{"text", "at"}]``;
- ``unsupported_type``: the raw WhatsApp type of a message stored as "[mensagem não
  suportada]";
- ``delivery``: ``{"status": "sent"|"delivered"|"read"|"failed", "at", "error": {"code",
  "title"} | null}`` on an outbound WhatsApp message once WhatsApp reported on it
  (``engine/whatsapp_status.py``), or ``failed`` with ``window_closed`` when the 24-hour
  window had closed and the block had no template (DESIGN §10.6).
"""
from __future__ import annotations

from engine.moments import iso

# Keys of ``messages.details`` shown as they are stored.
SHOWN_AS_STORED = ("media", "contacts", "order", "referral", "referred_product", "delivery",
                   "unsupported_type")
# Every key a message may have besides the six of DESIGN §6.
EXTRA_KEYS = (*SHOWN_AS_STORED, "forwarded", "reply_to", "reaction", "deleted", "edited", "edits")


def message_views(rows) -> list[dict]:
    """Every message of one conversation (rows of ``messages``, in timeline order)."""
    by_external_id = {row["external_id"]: row for row in rows if row["external_id"]}
    return [message_view(row, by_external_id) for row in rows]


def message_view(row, by_external_id: dict) -> dict:
    out = {"id": row["id"], "direction": row["direction"], "author": row["author"],
           "text": row["text"], "buttons": row["buttons"] or [], "at": iso(row["at"])}
    details = row["details"] if isinstance(row["details"], dict) else {}
    if not details:
        return out
    for key in SHOWN_AS_STORED:
        if details.get(key):
            out[key] = details[key]
    if details.get("forwarded"):
        out["forwarded"] = True
    reply_to = details.get("reply_to")
    if reply_to:
        quoted = by_external_id.get(reply_to)
        out["reply_to"] = {"id": quoted["id"] if quoted is not None else None,
                           "text": quoted["text"] if quoted is not None else None}
    if details.get("reaction"):
        out["reaction"] = details["reaction"]
    if details.get("deleted_at"):
        out["deleted"] = True
    elif details.get("edited_at"):
        out["edited"] = True
        out["edits"] = [{"text": e.get("text"), "at": e.get("at")} for e in details.get("edits") or []]
    return out
