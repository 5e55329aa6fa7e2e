"""engine/graph.py: a flow document compiled into the lookups the engine walks on."""
from __future__ import annotations

from engine.graph import FlowCache, build_graph, compile_flow


def doc(flow_id: str = "vendas", **extra) -> dict:
    return {
        "schema_version": 1, "id": flow_id, "name": "Vendas", "start": "q", "triggers": [],
        "blocks": [
            {"id": "q", "type": "question", "data": {"text": "Nota?", "input": "number", "save_as": "n"}},
            {"id": "ok", "type": "message", "data": {"text": "Obrigado"}},
            {"id": "late", "type": "message", "data": {"text": "Ainda aí?"}},
        ],
        "edges": [{"from": "q", "port": "answered", "to": "ok"}, {"from": "q", "port": "timeout", "to": "late"},
                  {"from": "ok", "port": "next", "to": "gone"}],
        **extra}


def test_ports_lead_to_their_blocks():
    flow = compile_flow(doc(), 3)
    assert (flow.id, flow.start, flow.version) == ("vendas", "q", 3)
    assert flow.next("q", "answered") == "ok" and flow.next("q", "timeout") == "late"


def test_a_port_with_no_edge_or_an_edge_to_a_missing_block_ends_the_run():
    flow = compile_flow(doc())
    assert flow.next("late", "next") is None
    assert flow.next("ok", "next") is None  # "gone" is not a block
    assert flow.next("nowhere", "next") is None


def test_the_graph_keys_edges_by_port_and_keeps_each_block():
    graph = build_graph(doc())
    assert set(graph.nodes) >= {"q", "ok", "late"}
    assert graph.nodes["q"]["block"]["type"] == "question"
    assert sorted(key for _, _, key in graph.out_edges("q", keys=True)) == ["answered", "timeout"]


def test_a_csat_question_is_noticed():
    plain = compile_flow(doc())
    rated = doc()
    rated["blocks"][0]["data"]["csat"] = True
    assert not plain.has_csat_question and compile_flow(rated).has_csat_question


def test_the_cache_compiles_a_published_version_once_and_drafts_every_time():
    cache = FlowCache(size=2)
    document = doc()
    assert cache.get(document, 1) is cache.get(document, 1)
    assert cache.get(document, None) is not cache.get(document, None)


def test_the_cache_tells_two_documents_with_the_same_id_and_version_apart():
    cache = FlowCache()
    one, other = doc(), doc()
    other["blocks"][1]["data"]["text"] = "Outro"
    assert cache.get(one, 1).blocks["ok"]["data"]["text"] == "Obrigado"
    assert cache.get(other, 1).blocks["ok"]["data"]["text"] == "Outro"


def test_the_cache_keeps_only_its_size():
    cache = FlowCache(size=2)
    first = cache.get(doc("a"), 1)
    cache.get(doc("b"), 1)
    cache.get(doc("c"), 1)
    assert cache.get(first.doc, 1) is not first  # evicted, compiled again
