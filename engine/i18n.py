"""The texts the engine writes for people (lint findings, import errors, repository and
account errors), in papo's one message catalog.

The catalog is Flask-Babel's: message ids are the pt-BR texts, and the English ones are
in ``editor/translations/en/LC_MESSAGES/messages.po`` (compiled to ``messages.mo``). The
engine must not import Flask, so it reads those same files with Babel's own gettext
(:func:`gettext`); ``python -m editor.i18n update`` extracts the ids marked ``N_`` here
and in ``schemas``, and the catalog test checks every one has an English text.

Engine messages are named by a stable key (a lint code, an import problem) in
:data:`MESSAGES`; :func:`t` looks the key up and translates. Code that picks the
language itself outside a Flask request (the API's body errors, the CLI) calls
:func:`gettext` with the pt-BR text. Parameters are ``%(name)s`` placeholders.
"""
from __future__ import annotations

from functools import cache
from pathlib import Path

from babel.support import NullTranslations, Translations

DEFAULT_LANG = "pt"
LANGS = ("pt", "en")
# The one catalog (DESIGN: Flask-Babel catalogs in editor/translations/): read as files,
# not imported, so the engine stays free of Flask.
CATALOG_DIR = Path(__file__).resolve().parent.parent / "editor" / "translations"


def N_(msgid: str) -> str:
    """Marks a pt-BR text for extraction into the catalog; returns it unchanged."""
    return msgid


MESSAGES: dict[str, str] = {
    # importing a flow document (schemas.load_document)
    "not_json": N_("O arquivo não é JSON válido: %(reason)s."),
    "json.unterminated_string": N_("falta fechar aspas na linha %(line)s"),
    "json.comma": N_("falta uma vírgula entre dois itens na linha %(line)s, coluna %(col)s"),
    "json.colon": N_("falta dois-pontos (:) depois do nome do campo na linha %(line)s, coluna %(col)s"),
    "json.property_name": N_("um nome de campo precisa estar entre aspas duplas, ou sobrou uma vírgula antes de } (linha %(line)s, coluna %(col)s)"),
    "json.value": N_("falta um valor, ou sobrou uma vírgula, na linha %(line)s, coluna %(col)s"),
    "json.empty": N_("o arquivo está vazio"),
    "json.extra": N_("há mais texto depois do fim do documento (linha %(line)s, coluna %(col)s)"),
    "json.control": N_("há uma quebra de linha ou um caractere de controle dentro de um texto na linha %(line)s (use \\n)"),
    "json.escape": N_("há uma barra invertida (\\) que não forma um código válido na linha %(line)s, coluna %(col)s"),
    "json.constant": N_("%(value)s não é um valor JSON (use um número ou null)"),
    "json.other": N_("erro na linha %(line)s, coluna %(col)s"),
    "not_utf8": N_("O arquivo não é um JSON válido em UTF-8 (byte inválido na posição %(position)s). Salve-o como UTF-8."),
    "too_large": N_("O documento tem %(size)s bytes; o limite é %(limit)s bytes (2 MiB)."),
    "too_deep": N_("O documento tem aninhamento profundo demais (limite: %(limit)s níveis)."),
    "nul_text": N_("Texto com caractere não permitido (NUL). Remova-o e tente de novo."),
    "too_many_blocks": N_("O fluxo tem %(count)s blocos; o limite é %(limit)s."),
    "too_many_edges": N_("O fluxo tem %(count)s ligações; o limite é %(limit)s."),
    "not_object": N_("O documento precisa ser um objeto JSON ({ ... })."),
    "newer_version": N_("Este fluxo usa o formato versão %(found)s, mais novo que o suportado (%(supported)s). Atualize o papo para importá-lo."),
    "bad_version": N_("O campo \"Versão do formato\" (schema_version) precisa ser um número inteiro, ex.: 1."),
    "duplicate_block": N_("Dois blocos têm o mesmo id \"%(block_id)s\"; cada bloco precisa de um id só seu."),
    "duplicate_port": N_("a saída \"%(port)s\" tem mais de uma ligação (cada saída leva a um só bloco)"),
    "unknown_port": N_("O bloco \"%(block_id)s\" não tem a saída \"%(port)s\" (saídas: %(ports)s)."),
    # JSON Schema problems
    "where.flow": N_("Fluxo"),
    "where.block": N_("Bloco \"%(title)s\""),
    "where.block_id": N_("Bloco \"%(title)s\" (%(block_id)s)"),
    "where.block_n": N_("Bloco nº %(n)s"),
    "where.edge": N_("Ligação nº %(n)s"),
    "where.trigger": N_("Gatilho nº %(n)s"),
    "where.test": N_("Teste \"%(name)s\""),
    "where.test_n": N_("Teste nº %(n)s"),
    "field.document": N_("o documento"),
    "field.this": N_("este campo"),
    "field.item": N_("%(field)s, item nº %(n)s: %(sub)s"),
    "field.schema_version": N_("Versão do formato"),
    "field.id": N_("Identificador"),
    "field.name": N_("Nome"),
    "field.description": N_("Descrição"),
    "field.priority": N_("Prioridade"),
    "field.triggers": N_("Gatilhos"),
    "field.start": N_("Bloco inicial"),
    "field.blocks": N_("Blocos"),
    "field.edges": N_("Ligações"),
    "field.type": N_("Tipo"),
    "field.data": N_("Dados do bloco"),
    "field.position": N_("Posição"),
    "field.match": N_("Comparação"),
    "field.value": N_("Valor"),
    "field.interrupts": N_("Interrompe perguntas"),
    "field.from": N_("De"),
    "field.port": N_("Saída"),
    "field.to": N_("Para"),
    "type.text": N_("um texto"),
    "type.integer": N_("um número inteiro"),
    "type.number": N_("um número"),
    "type.boolean": N_("true ou false"),
    "type.array": N_("uma lista [ ]"),
    "type.object": N_("um objeto { }"),
    "type.null": N_("null (vazio)"),
    "schema.required": N_("falta o campo obrigatório %(field)s"),
    "schema.unknown_field": N_("o campo \"%(field)s\" não existe"),
    "schema.unknown_field_hint": N_("o campo \"%(field)s\" não existe — quis dizer \"%(hint)s\"?"),
    "schema.allowed_fields": N_(" (campos possíveis: %(fields)s)"),
    "schema.type": N_("%(field)s precisa ser %(expected)s"),
    "schema.enum": N_("%(field)s não aceita \"%(value)s\"; use um de: %(allowed)s"),
    "schema.unknown_type": N_("o tipo de bloco \"%(value)s\" não existe (tipos: %(allowed)s)"),
    "schema.const": N_("%(field)s tem um valor que não é permitido aqui"),
    "schema.pattern": N_("%(field)s tem um formato inválido: \"%(value)s\""),
    "schema.minLength": N_("%(field)s não pode ficar vazio"),
    "schema.maxLength": N_("%(field)s passa do limite de %(limit)s caracteres"),
    "schema.minimum": N_("%(field)s precisa ser no mínimo %(limit)s"),
    "schema.maximum": N_("%(field)s pode ser no máximo %(limit)s"),
    "schema.exclusiveMinimum": N_("%(field)s precisa ser maior que %(limit)s"),
    "schema.minItems": N_("%(field)s precisa de pelo menos %(limit)s item(ns)"),
    "schema.maxItems": N_("%(field)s aceita no máximo %(limit)s itens"),
    "schema.not": N_("%(field)s não é permitido aqui"),
    "schema.other": N_("%(field)s tem um valor inválido"),
    # lint findings (engine.lint)
    "lint.dangling_edge": N_("A ligação da saída \"%(port)s\" aponta para o bloco \"%(to)s\", que não existe."),
    "lint.block": N_("Bloco %(block)s:"),
    "lint.dangling_source": N_("Há uma ligação saindo do bloco \"%(source)s\", que não existe."),
    "lint.unknown_start": N_("O bloco inicial \"%(start)s\" não existe."),
    "lint.unknown_jump_flow": N_("Vai para o fluxo \"%(flow_id)s\", que não existe."),
    "lint.unknown_jump_block": N_("Vai para o bloco \"%(target)s\" do fluxo \"%(flow_id)s\", que não existe."),
    "lint.spin_loop": N_("Estes blocos formam um ciclo sem pergunta nem espera (%(cycle)s): o robô giraria para sempre."),
    "lint.unreachable": N_("Nenhum caminho chega a este bloco a partir do início."),
    "lint.port_unconnected": N_("A saída \"%(port)s\" não está ligada a nada: a conversa termina aí."),
    "lint.invalid_port_unconnected": N_("A saída \"%(port)s\" não está ligada: depois de %(attempts)s respostas inválidas a conversa termina sem aviso ao cliente."),
    "lint.timeout_port_unconnected": N_("A pergunta tem tempo limite, mas a saída \"%(port)s\" não está ligada: se o cliente não responder, a conversa termina sem aviso."),
    "lint.no_trigger": N_("O fluxo não tem gatilho (nenhuma palavra-chave e não é o padrão) e nenhum outro fluxo vai para ele: ele nunca vai começar. Adicione um gatilho nas configurações do fluxo."),
    "lint.var_before_set": N_("A variável \"%(name)s\" pode ser usada antes de ter valor: um caminho desde o início chega aqui sem passar por um bloco que a salve."),
    "lint.too_many_buttons": N_("O WhatsApp mostra no máximo 3 botões; este bloco tem %(count)s."),
    "lint.button_too_long": N_("O botão \"%(label)s\" tem %(length)s caracteres; o WhatsApp aceita até 20."),
    "lint.text_too_long": N_("O texto tem %(length)s caracteres; o WhatsApp aceita até 4096."),
    "lint.bad_template": N_("O texto tem um erro de modelo: %(error)s."),
    "lint.bad_pattern": N_("A expressão regular é inválida: %(error)s."),
    "lint.bad_jsonlogic": N_("A regra JSONLogic é inválida: %(error)s."),
    "lint.unknown_port": N_("A ligação sai da saída \"%(port)s\", que este bloco não tem (saídas: %(ports)s)."),
    "lint.bad_trigger_regex": N_("O gatilho %(index)s tem uma expressão regular inválida: %(error)s."),
    "lint.template_unknown": N_("O modelo do WhatsApp \"%(name)s\" não está entre os aprovados. Sincronize os modelos em Configurações › WhatsApp ou escolha outro."),
    "lint.template_language_unknown": N_("O modelo do WhatsApp \"%(name)s\" não existe no idioma %(language)s (idiomas aprovados: %(languages)s)."),
    "lint.template_param_count": N_("O modelo do WhatsApp \"%(name)s\" pede %(expected)s parâmetros; este bloco dá %(count)s."),
    # template checks (engine.templates.syntax_error)
    "templates.unknown_filter": N_("o filtro \"%(name)s\" não existe"),
    "templates.unknown_test": N_("o teste \"%(name)s\" não existe"),
    "templates.at_line": N_("%(problem)s (linha %(line)s)"),
    # the flow repository (engine.flows)
    "flows.flow_exists": N_("Já existe um fluxo com o id \"%(flow_id)s\"."),
    "flows.flow_not_found": N_("O fluxo \"%(flow_id)s\" não existe."),
    "flows.version_not_found": N_("O fluxo \"%(flow_id)s\" não tem a versão %(version)s."),
    "flows.revision_required": N_("Informe a revisão que você editou (cabeçalho If-Match)."),
    "flows.bad_revision": N_("Revisão inválida: \"%(value)s\" (use o número da revisão, ex.: \"3\")."),
    "flows.stale_revision": N_("Outra pessoa salvou a revisão %(current)s deste fluxo depois da revisão %(seen)s que você editou. Recarregue e refaça suas mudanças."),
    "flows.id_mismatch": N_("O id do documento (\"%(doc_id)s\") é diferente do fluxo \"%(flow_id)s\"."),
    "flows.flow_has_errors": N_("O fluxo tem %(count)s erro(s); corrija antes de publicar."),
    "flows.busy": N_("O fluxo \"%(flow_id)s\" está sendo alterado por outra pessoa; tente de novo."),
    "flows.bad_version": N_("Versão inválida: \"%(value)s\" (use o número da versão, ex.: 2)."),
    "flows.copy_name": N_("%(name)s (cópia)"),
    # users and tokens (engine.accounts)
    "accounts.bad_login": N_("Login inválido: \"%(login)s\". Use de 1 a 64 caracteres: letras minúsculas, números, ponto, hífen ou sublinhado, começando por letra ou número."),
    "accounts.bad_role": N_("Papel inválido: \"%(role)s\". Use \"admin\" ou \"agent\"."),
    "accounts.bad_password": N_("A senha precisa ter pelo menos %(minimum)s caracteres (e no máximo %(limit)s). Uma frase curta é fácil de lembrar e difícil de adivinhar."),
    "accounts.login_taken": N_("Já existe um usuário com o login \"%(login)s\"."),
    "accounts.no_user": N_("Não existe usuário com o login \"%(login)s\"."),
    "tests.unknown_step": N_("Passo de teste desconhecido: \"%(field)s\" (use um de: %(kinds)s)."),
    "tests.step_shape": N_("Cada passo de teste tem exatamente uma ação (uma de: %(kinds)s)."),
    "tests.duplicate_name": N_("Há mais de um teste chamado \"%(name)s\"."),
    "lint.test_buttons_none": N_("O teste \"%(test)s\" (passo %(step)s) espera botões, mas a mensagem \"%(title)s\" nunca tem botões."),
    "lint.test_buttons_flow": N_("O teste \"%(test)s\" (passo %(step)s) espera botões, mas nenhum bloco deste fluxo envia botões."),
    "flowtest.step": N_("passo %(step)s: %(message)s"),
    "flowtest.expected_got": N_("esperado %(expected)s, recebido %(got)s"),
    "flowtest.no_message": N_("nenhuma mensagem"),
    "flowtest.containing": N_("uma mensagem contendo %(text)s"),
    "flowtest.buttons": N_("os botões %(labels)s"),
    "flowtest.no_buttons": N_("nenhum botão"),
    "flowtest.status": N_("o status \"%(status)s\""),
    "flowtest.var": N_("%(name)s valendo %(value)s"),
    "flowtest.unset": N_("%(name)s sem valor"),
    "flowtest.end": N_("o fim (nenhuma mensagem a mais)"),
    "flowtest.unmocked": N_("requisição HTTP sem resposta simulada em http_mocks: %(method)s %(url)s"),
    "flowtest.refused": N_("o passo foi recusado: %(error)s"),
    "flowtest.crashed": N_("erro interno do papo ao rodar este passo (%(error)s); veja o log"),
    "flowtest.failed_summary": N_("Testes do fluxo que falharam: %(count)s. Corrija o fluxo ou os testes, ou publique mesmo assim."),
    "accounts.no_token": N_("Não existe token com o id %(token_id)s."),
    "accounts.bad_token_name": N_("O nome do token pode ter no máximo %(limit)s caracteres."),
    "accounts.bad_expiry": N_("A validade do token precisa ser um número de dias entre 1 e 3650."),
}


def normalize_lang(lang: str | None) -> str:
    """``"pt"`` (the default) or ``"en"`` from ``en``, ``en-US``, ``pt-BR``, ``pt_BR``…"""
    if not lang:
        return DEFAULT_LANG
    lang = lang.lower().replace("_", "-")
    return "en" if lang.startswith("en") else "pt"


@cache
def _translations(lang: str) -> NullTranslations:
    if lang == DEFAULT_LANG:
        return NullTranslations()  # the message ids are the pt-BR texts
    return Translations.load(str(CATALOG_DIR), [lang], domain="messages")


def gettext(msgid: str, lang: str | None = None, **params) -> str:
    """The pt-BR text ``msgid`` in ``lang``, with ``params`` filled in (as Flask-Babel does)."""
    text = _translations(normalize_lang(lang)).gettext(msgid)
    return text % params if params else text


def has_message(key: str) -> bool:
    """Whether ``key`` names an engine message."""
    return key in MESSAGES


def t(key: str, lang: str | None = None, **params) -> str:
    """The engine message ``key`` (see :data:`MESSAGES`) in ``lang`` (pt-BR by default)."""
    return gettext(MESSAGES.get(key, key), lang, **params)
