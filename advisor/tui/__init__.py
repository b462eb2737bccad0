"""The Textual app (``tunewise`` with no command): consultation, recommendation, plan, run, results.

The only part of tunewise that imports textual. Screens hold no domain logic: they call the
advisor core (interview, audit, ranking, plans, labeling) and draw what it returns; slow calls run
in Textual workers whose failures open an error dialog instead of ending the app.
"""
