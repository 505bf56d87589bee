"""Pickled objects that run code when they are loaded."""

from __future__ import annotations


class _Reduce:
    def __init__(self, func, args) -> None:
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args
