"""papo's web application: flow editor, simulator, inbox, reports and REST API."""
