"""One module per ``tunewise`` subcommand: ``configure(parser)`` and ``main(args) -> int``.

Modules are imported only when their command runs, so ``tunewise --help`` stays fast.
"""
