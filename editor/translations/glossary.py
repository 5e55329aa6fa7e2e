"""The product's shared vocabulary (DESIGN §8), marked for translation.

Nothing imports this module: ``python -m editor.i18n update`` extracts these strings so
the English catalog always holds the public button, tab and label names, whichever page
uses them first. Pages call ``_("Publicar")`` and get "Publish" under ``?lang=en``.
"""


def _(text: str) -> str:
    return text


VOCABULARY = (
    # flow editor
    _("Validar"), _("Publicar"), _("Desfazer"), _("Refazer"), _("Exportar"), _("Importar"),
    _("Salvar"), _("Salvar rascunho"), _("Excluir"), _("Cancelar"), _("Novo fluxo"),
    _("Versões"), _("Restaurar esta versão"), _("Rascunho"), _("Publicado"), _("Problemas"),
    _("Erro"), _("Aviso"), _("Mensagem"), _("Pergunta"), _("Ação"), _("Nome"),
    _("Descrição"), _("Prioridade"), _("Gatilhos"),
    # simulator
    _("Simulador"), _("Enviar"), _("Abrir atendimento"), _("Concluir"), _("Avançar tempo"),
    _("Reiniciar"), _("Variáveis"), _("Mensagem do cliente"),
    # inbox
    _("Abertos"), _("Concluídos"), _("Buscar"), _("Reabrir"), _("Atribuir a mim"),
    _("Atribuir"), _("Desatribuir"), _("Desatribuir e concluir"), _("Responsáveis"),
    _("Sem responsável"), _("Todos"), _("Resposta"), _("Cliente"), _("Robô"),
    _("Nenhuma conversa aqui."),
    # reports
    _("Período"), _("De"), _("Até"), _("Abertos agora"), _("Concluídos no período"),
    _("Tempo de resolução"), _("Tempo da primeira resposta"), _("Média"), _("Mediana"),
    _("Por atendente"), _("Satisfação (CSAT)"), _("Funil do fluxo"),
    # web chat
    _("Visitante"), _("Digite sua mensagem"),
)
