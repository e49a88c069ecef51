"""One module per ``cnnzoo`` subcommand; each defines ``add_parser(subparsers)``."""
