"""Message catalogs for texts the engine writes for people (lint findings, import errors).

The web UI translates its own strings with Flask-Babel; the engine must not import
Flask, so its few messages live here, pt-BR first, English as a choice.
"""
from __future__ import annotations

DEFAULT_LANG = "pt"

CATALOG: dict[str, dict[str, str]] = {
    "pt": {
        # import / structure
        "not_json": "O arquivo não é um JSON válido (linha {line}, coluna {col}): {error}.",
        "not_utf8": "O arquivo não é um JSON válido em UTF-8 (byte inválido na posição {position}). Salve-o como UTF-8.",
        "too_large": "O documento tem {size} bytes; o limite é {limit} bytes (2 MiB).",
        "too_deep": "O documento tem aninhamento profundo demais (limite: {limit} níveis).",
        "too_many_blocks": "O fluxo tem {count} blocos; o limite é {limit}.",
        "too_many_edges": "O fluxo tem {count} ligações; o limite é {limit}.",
        "not_object": "O documento precisa ser um objeto JSON ({{ ... }}).",
        "newer_version": "Este fluxo usa o formato versão {found}, mais novo que o suportado ({supported}). Atualize o papo para importá-lo.",
        "bad_version": "O campo schema_version precisa ser um número inteiro.",
        "duplicate_block": "O id de bloco \"{block_id}\" aparece mais de uma vez.",
        "duplicate_port": "A saída \"{port}\" do bloco \"{block_id}\" tem mais de uma ligação.",
        "unknown_port": "O bloco \"{block_id}\" não tem a saída \"{port}\" (saídas: {ports}).",
        "schema.required": "Falta o campo obrigatório \"{field}\".",
        "schema.additionalProperties": "Campo desconhecido: \"{field}\".",
        "schema.type": "Tipo errado: esperava {expected}.",
        "schema.enum": "Valor não permitido; use um de: {allowed}.",
        "schema.const": "Valor não permitido aqui.",
        "schema.pattern": "Formato inválido: \"{value}\".",
        "schema.minLength": "Não pode ficar vazio.",
        "schema.maxLength": "Texto longo demais (máximo {limit} caracteres).",
        "schema.minimum": "O valor mínimo é {limit}.",
        "schema.maximum": "O valor máximo é {limit}.",
        "schema.exclusiveMinimum": "O valor precisa ser maior que {limit}.",
        "schema.minItems": "Precisa de pelo menos {limit} item(ns).",
        "schema.maxItems": "No máximo {limit} itens.",
        "schema.not": "Este campo não é permitido aqui.",
        "schema.unknown_type": "Tipo de bloco desconhecido: \"{value}\".",
        "schema.other": "Valor inválido: {detail}",
        # lint
        "lint.dangling_edge": "A ligação da saída \"{port}\" aponta para o bloco \"{to}\", que não existe.",
        "lint.block": "Bloco {block}:",
        "lint.dangling_source": "Há uma ligação saindo do bloco \"{source}\", que não existe.",
        "lint.unknown_start": "O bloco inicial \"{start}\" não existe.",
        "lint.unknown_jump_flow": "Vai para o fluxo \"{flow_id}\", que não existe.",
        "lint.unknown_jump_block": "Vai para o bloco \"{target}\" do fluxo \"{flow_id}\", que não existe.",
        "lint.spin_loop": "Estes blocos formam um ciclo sem pergunta nem espera ({cycle}): o robô giraria para sempre.",
        "lint.unreachable": "Nenhum caminho chega a este bloco a partir do início.",
        "lint.port_unconnected": "A saída \"{port}\" não está ligada a nada: a conversa termina aí.",
        "lint.invalid_port_unconnected": "A saída \"{port}\" não está ligada: depois de {attempts} respostas inválidas a conversa termina sem aviso ao cliente.",
        "lint.timeout_port_unconnected": "A pergunta tem tempo limite, mas a saída \"{port}\" não está ligada: se o cliente não responder, a conversa termina sem aviso.",
        "lint.no_trigger": "O fluxo não tem gatilho (nenhuma palavra-chave e não é o padrão) e nenhum outro fluxo vai para ele: ele nunca vai começar. Adicione um gatilho nas configurações do fluxo.",
        "lint.var_before_set": "A variável \"{name}\" pode ser usada antes de ter valor: um caminho desde o início chega aqui sem passar por um bloco que a salve.",
        "lint.too_many_buttons": "O WhatsApp mostra no máximo 3 botões; este bloco tem {count}.",
        "lint.button_too_long": "O botão \"{label}\" tem {length} caracteres; o WhatsApp aceita até 20.",
        "lint.text_too_long": "O texto tem {length} caracteres; o WhatsApp aceita até 4096.",
        "lint.bad_template": "O texto tem um erro de modelo: {error}.",
        "lint.bad_pattern": "A expressão regular é inválida: {error}.",
        "lint.bad_jsonlogic": "A regra JSONLogic é inválida: {error}.",
    },
    "en": {
        "not_json": "The file is not valid JSON (line {line}, column {col}): {error}.",
        "not_utf8": "The file is not valid UTF-8 JSON (invalid byte at position {position}). Save it as UTF-8.",
        "too_large": "The document is {size} bytes; the limit is {limit} bytes (2 MiB).",
        "too_deep": "The document is nested too deeply (limit: {limit} levels).",
        "too_many_blocks": "The flow has {count} blocks; the limit is {limit}.",
        "too_many_edges": "The flow has {count} connections; the limit is {limit}.",
        "not_object": "The document must be a JSON object ({{ ... }}).",
        "newer_version": "This flow uses format version {found}, newer than supported ({supported}). Upgrade papo to import it.",
        "bad_version": "schema_version must be an integer.",
        "duplicate_block": "Block id \"{block_id}\" appears more than once.",
        "duplicate_port": "Output \"{port}\" of block \"{block_id}\" has more than one connection.",
        "unknown_port": "Block \"{block_id}\" has no output \"{port}\" (outputs: {ports}).",
        "schema.required": "Missing required field \"{field}\".",
        "schema.additionalProperties": "Unknown field: \"{field}\".",
        "schema.type": "Wrong type: expected {expected}.",
        "schema.enum": "Value not allowed; use one of: {allowed}.",
        "schema.const": "Value not allowed here.",
        "schema.pattern": "Invalid format: \"{value}\".",
        "schema.minLength": "Must not be empty.",
        "schema.maxLength": "Text too long (at most {limit} characters).",
        "schema.minimum": "The minimum is {limit}.",
        "schema.maximum": "The maximum is {limit}.",
        "schema.exclusiveMinimum": "Must be greater than {limit}.",
        "schema.minItems": "Needs at least {limit} item(s).",
        "schema.maxItems": "At most {limit} items.",
        "schema.not": "This field is not allowed here.",
        "schema.unknown_type": "Unknown block type: \"{value}\".",
        "schema.other": "Invalid value: {detail}",
        "lint.dangling_edge": "The connection from output \"{port}\" points to block \"{to}\", which does not exist.",
        "lint.block": "Block {block}:",
        "lint.dangling_source": "A connection leaves block \"{source}\", which does not exist.",
        "lint.unknown_start": "The start block \"{start}\" does not exist.",
        "lint.unknown_jump_flow": "Jumps to flow \"{flow_id}\", which does not exist.",
        "lint.unknown_jump_block": "Jumps to block \"{target}\" of flow \"{flow_id}\", which does not exist.",
        "lint.spin_loop": "These blocks form a loop with no question or wait ({cycle}): the bot would spin forever.",
        "lint.unreachable": "No path from the start reaches this block.",
        "lint.port_unconnected": "Output \"{port}\" is not connected: the conversation ends there.",
        "lint.invalid_port_unconnected": "Output \"{port}\" is not connected: after {attempts} invalid answers the conversation ends without a word to the customer.",
        "lint.timeout_port_unconnected": "The question has a time limit, but output \"{port}\" is not connected: if the customer does not answer, the conversation ends without a word.",
        "lint.no_trigger": "The flow has no trigger (no keyword and it is not the default) and no other flow leads to it: it will never start. Add a trigger in the flow's settings.",
        "lint.var_before_set": "Variable \"{name}\" may be used before it has a value: a path from the start reaches here without passing a block that saves it.",
        "lint.too_many_buttons": "WhatsApp shows at most 3 buttons; this block has {count}.",
        "lint.button_too_long": "Button \"{label}\" has {length} characters; WhatsApp accepts up to 20.",
        "lint.text_too_long": "The text has {length} characters; WhatsApp accepts up to 4096.",
        "lint.bad_template": "The text has a template error: {error}.",
        "lint.bad_pattern": "The regular expression is invalid: {error}.",
        "lint.bad_jsonlogic": "The JSONLogic rule is invalid: {error}.",
    },
}


def normalize_lang(lang: str | None) -> str:
    if not lang:
        return DEFAULT_LANG
    lang = lang.lower().replace("_", "-")
    return "en" if lang.startswith("en") else "pt"


def t(key: str, lang: str | None = None, **params) -> str:
    """The message ``key`` in ``lang`` (pt-BR by default), with ``params`` filled in."""
    catalog = CATALOG[normalize_lang(lang)]
    template = catalog.get(key) or CATALOG["en"].get(key) or key
    return template.format(**params)

CATALOG["pt"]["lint.unknown_port"] = "A ligação sai da saída \"{port}\", que este bloco não tem (saídas: {ports})."
CATALOG["en"]["lint.unknown_port"] = "The connection leaves output \"{port}\", which this block does not have (outputs: {ports})."
CATALOG["pt"]["lint.bad_trigger_regex"] = "O gatilho {index} tem uma expressão regular inválida: {error}."
CATALOG["en"]["lint.bad_trigger_regex"] = "Trigger {index} has an invalid regular expression: {error}."
