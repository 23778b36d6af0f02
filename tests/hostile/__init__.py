"""The hostile-input suite (issue 27): damaged variants of the small cohorts, run through the installed CLI.

``inputs`` builds the damaged inputs, ``harness`` runs one case and checks everything a user is owed
(exit code, one message, no traceback, no note text or key anywhere, nothing half-written, the user's own
files untouched, the repair counted), ``cases`` is the table. tests/test_hostile_inputs.py runs it and
prints the share handled cleanly.
"""
