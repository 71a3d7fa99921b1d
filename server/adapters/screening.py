"""Sandbox wallet screening: every address passes except a configured deny list."""

from __future__ import annotations

from collections.abc import Iterable


class SandboxScreener:
    def __init__(self, denied_addresses: Iterable[str] = ()) -> None:
        self._denied = {address.lower() for address in denied_addresses}

    async def screen(self, chain_id: str) -> bool:
        address = chain_id.rsplit(":", 1)[-1].lower()
        return address not in self._denied
