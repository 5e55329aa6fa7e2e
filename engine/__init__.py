"""papo's runtime: flow engine, conversation state machine, storage and jobs.

Nothing in this package imports Flask or the editor.
"""
