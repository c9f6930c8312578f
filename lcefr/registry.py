"""A small name -> factory registry with glob listing (the timm ``_registry`` habit)."""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional

__all__ = ["Registry", "Entry", "UnknownNameError"]


class UnknownNameError(KeyError):
    """An unknown registry name; the message lists the known names."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class Entry:
    """One registered factory and the facts known about it without building it."""

    name: str
    fn: Callable[..., Any]
    tags: Dict[str, Any] = field(default_factory=dict)


class Registry:
    """Maps names to factories; a duplicate name is an error, an unknown one lists the known ones."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: Dict[str, Entry] = {}

    def register(self, fn: Optional[Callable] = None, *, name: Optional[str] = None, **tags):
        """Register ``fn`` under ``name`` (default: its ``__name__``); usable as a bare decorator."""

        def add(f: Callable) -> Callable:
            key = name or f.__name__
            if key in self._entries:
                raise ValueError(f"{self.kind} {key!r} is already registered")
            self._entries[key] = Entry(key, f, dict(tags))
            return f

        return add(fn) if fn is not None else add

    def entry(self, name: str) -> Entry:
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries))
            raise UnknownNameError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def get(self, name: str) -> Callable:
        return self.entry(name).fn

    def list(self, pattern: str = "*") -> List[str]:
        return sorted(n for n in self._entries if fnmatch.fnmatchcase(n, pattern))

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.list())

    def __len__(self) -> int:
        return len(self._entries)
