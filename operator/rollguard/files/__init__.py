"""User files: policies, scenarios, decisions and recorded series read into validated models
(``loading``, ``series``), with errors that name the file and the field.

The only package below the command line that reads files; ``rollguard.core`` never does.
"""
