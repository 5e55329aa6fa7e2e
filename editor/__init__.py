"""papo's web application: flow editor, simulator, inbox, reports and REST API.

``gunicorn 'editor:create_app()'`` serves it; ``papo serve`` runs it for one machine.
"""
from editor.app import create_app

__all__ = ["create_app"]
