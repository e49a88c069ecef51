"""Errors that mean "the user's input is wrong": the CLI prints them as one line and exits 2.

Warnings the user should act on (a file skipped, ...) are one line too, in the same form, on stderr:
:func:`warn` (not Python's ``warnings``, whose format adds a source line and shows each message once).
"""

import sys


class UserError(Exception):
    """Bad input from the user: the message says what is wrong and what to do."""


class ParamError(UserError):
    """A bad value of one named parameter of a library call.

    The message names the parameter as the library takes it (``freeze_until='stage9' ...``); a command that
    sets that parameter from a flag shows it as the flag (``--freeze-until stage9 ...``) with :meth:`for_flag`.
    """

    def __init__(self, param: str, value: object, text: str) -> None:
        self.param, self.value, self.text = param, value, text
        super().__init__(f"{param} is missing: {text}" if value is None else f"{param}={value!r} {text}")

    def for_flag(self, flag: str) -> str:
        """The message with ``flag`` (``--unfreeze``, or a config key such as ``model.freeze_until``) for the name."""
        if self.value is None:
            return f"{flag} is missing: {self.text}"
        return f"{flag} {self.value} {self.text}" if flag.startswith("-") else f"{flag}={self.value} {self.text}"


def warn(message: str) -> None:
    """Print ``cnnzoo: warning: MESSAGE`` on stderr."""
    print(f"cnnzoo: warning: {message}", file=sys.stderr, flush=True)
