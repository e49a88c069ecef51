"""Errors that mean "the user's input is wrong": the CLI prints them as one line and exits 2."""


class UserError(Exception):
    """Bad input from the user: the message says what is wrong and what to do."""
