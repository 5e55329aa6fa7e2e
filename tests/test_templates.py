"""engine/templates.py: what a message template renders, and what it reports."""
from __future__ import annotations

from engine.templates import MAX_RENDERED, referenced_names, render, syntax_error, unknown_names

CONTACT = {"name": "Ana", "external_id": "5511999990000"}


def test_variables_and_the_contact_render():
    text, missing, error = render("Oi {{ contact.name }}, seu pedido {{ pedido }} ({{ vars.pedido }})",
                                  {"pedido": 42}, CONTACT)
    assert (text, missing, error) == ("Oi Ana, seu pedido 42 (42)", [], None)


def test_text_without_braces_is_returned_as_it_is():
    assert render("Olá!", {}, CONTACT) == ("Olá!", [], None)


def test_a_missing_variable_renders_empty_and_is_named():
    text, missing, error = render("Total: {{ total }}{{ total }}.", {}, CONTACT)
    assert (text, missing, error) == ("Total: .", ["total"], None)


def test_a_syntax_error_renders_nothing_and_says_why():
    text, missing, error = render("Oi {{ nome ", {}, CONTACT)
    assert text == "" and missing == [] and error


def test_output_is_cut_at_the_limit():
    text, _missing, _error = render("{% for i in range(5000) %}xx{% endfor %}", {}, CONTACT)
    assert len(text) == MAX_RENDERED


def test_the_sandbox_refuses_reaching_into_python():
    assert render("{{ contact.__class__.__mro__ }}", {}, CONTACT)[0] == ""
    assert render("{{ contact.items.__globals__ }}", {}, CONTACT)[0] == ""


def test_referenced_names_count_vars_dot_as_the_name():
    assert referenced_names("{{ a }} {{ vars.b }} {% for x in c %}{{ x }}{% endfor %}") == {"a", "b", "c"}
    assert referenced_names("sem chaves") == set()
    assert referenced_names("{{ a ") is None


def test_unknown_filters_and_tests_are_found_before_anything_runs():
    assert unknown_names("{{ nome|upperr }}") == [("filter", "upperr", 1)]
    assert unknown_names("{{ nome|upper }}") == []


def test_syntax_errors_speak_the_authors_language():
    assert syntax_error("{{ nome|upper }}") is None
    assert syntax_error("{{ nome|upperr }}") == 'o filtro "upperr" não existe (linha 1)'
    assert syntax_error("{{ nome|upperr }}", "en") == 'unknown filter "upperr" (line 1)'
    assert "linha 1" in syntax_error("{{ nome ")
