"""Built-in adaptation methods, each a plugin registered like a third party's.

Every subpackage implements ``tunewise_register_methods``; ``tunewise.plugins.manager`` lists them
in ``DEFAULT_PLUGINS``. Importing a method package must stay light: torch is imported only in
``run``.
"""
