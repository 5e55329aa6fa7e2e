"""Block ids are never reused in a flow (DESIGN §10.1): the mark the editor numbers above."""
from __future__ import annotations

import copy


def _doc(*block_ids: str) -> dict:
    return {"schema_version": 1, "id": "pizza", "name": "Pizza", "triggers": [{"type": "default"}],
            "start": block_ids[0],
            "blocks": [{"id": b, "type": "message", "data": {"text": f"Bloco {b}"}} for b in block_ids],
            "edges": []}


def test_a_deleted_blocks_number_stays_taken_in_every_later_revision(flows):
    flows.create(_doc("b1", "b2", "b8"), actor="ana")
    without = _doc("b1", "b2")
    flows.update("pizza", without, 1, actor="ana")
    assert flows.block_number_mark("pizza") == (8, 2)
    # asking again from the last revision read sees only what came after
    renamed = copy.deepcopy(without)
    renamed["blocks"].append({"id": "saudacao", "type": "message", "data": {"text": "Oi"}})
    flows.update("pizza", renamed, 2, actor="ana")
    assert flows.block_number_mark("pizza", after_revision=2) == (2, 3)
    assert flows.block_number_mark("pizza", after_revision=3) == (0, 3)


def test_the_editor_page_numbers_new_blocks_above_the_mark(flows, tmp_path):
    from editor import create_app
    from engine import accounts

    engine = flows.engine
    app = create_app({"PAPO_DATABASE_URL": str(engine.url.render_as_string(hide_password=False)),
                      "TESTING": True, "SECRET_KEY": "t", "WTF_CSRF_ENABLED": False,
                      "PAPO_INSTANCE_PATH": str(tmp_path / "instance")})
    app.extensions["papo"]["engine"] = engine
    accounts.create_user(engine, "ana", "admin", password="senha-da-ana", name="Ana")
    flows.create(_doc("b1", "b12"), actor="ana")
    flows.update("pizza", _doc("b1"), 1, actor="ana")
    client = app.test_client()
    assert client.post("/login", data={"login": "ana", "password": "senha-da-ana"}).status_code == 302
    page = client.get("/flows/pizza/edit").get_data(as_text=True)
    assert '"blockNumberMark": 12' in page
