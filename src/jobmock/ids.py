"""Job ids drawn from the seeded generator, following a spec's ``ids`` template."""

from __future__ import annotations

import random
import re
import uuid

__all__ = ["IdMaker"]

_TOKEN = re.compile(r"\{(uuid|seq|hex:\d+|nanoid:\d+)\}")
_NANOID = "_-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


class IdMaker:
    """Makes ids such as ``job_{hex:16}`` or ``{uuid}`` from a :class:`random.Random`."""

    def __init__(self, template: str, rng: random.Random) -> None:
        self.template = template
        self.rng = rng
        self.seq = 0

    def _token(self, m: re.Match[str]) -> str:
        kind, _, n = m.group(1).partition(":")
        if kind == "uuid":
            return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        if kind == "seq":
            return str(self.seq)
        if kind == "hex":
            return "".join(self.rng.choice("0123456789abcdef") for _ in range(int(n)))
        return "".join(self.rng.choice(_NANOID) for _ in range(int(n)))

    def __call__(self) -> str:
        self.seq += 1
        return _TOKEN.sub(self._token, self.template)
