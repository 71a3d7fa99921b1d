"""Pre-signed `POST /customers` requests for wrk to replay, each used exactly once.

Every request has its own Idempotency-Key, chainId, externalId and nonce (the SDK's default),
so each is a real create, never an idempotent replay. Signing costs ~2 ms per P-384 request
in Python, so it happens before the timed run, in worker processes (spawned: the bench
process holds gRPC channels, which must not be forked), and wrk's Lua only hands out bytes.
File format, read by CREATE_LUA: per request a line with its byte length, then the bytes.
"""

from __future__ import annotations

import json
import pathlib
import secrets
import uuid
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

from client.signing import (
    PrivateSigningKey,
    load_private_key,
    new_nonce,
    private_key_pem,
    sign_headers,
)

CREATE_PATH = "/customers"
EXHAUSTED_PATH = "/__bench/requests-exhausted"

# One Lua state per wrk thread: thread k of n sends requests k, k+n, k+2n ... so no request
# is sent twice. Past the end it asks for EXHAUSTED_PATH, which cannot answer 2xx, so the
# run fails loudly instead of turning into idempotent replays.
CREATE_LUA = f"""
local threads = {{}}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  requests = {{}}
  index = 0
  exhausted = 0
  local nthreads = tonumber(args[2])
  local f = assert(io.open(args[1], "rb"))
  local position = 0
  while true do
    local line = f:read("*l")
    if not line then break end
    local raw = f:read(tonumber(line))
    if position % nthreads == id then
      requests[#requests + 1] = raw
    end
    position = position + 1
  end
  f:close()
end

function request()
  index = index + 1
  if index > #requests then
    exhausted = exhausted + 1
    return wrk.format("GET", "{EXHAUSTED_PATH}")
  end
  return requests[index]
end

function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do
    total = total + (thread:get("exhausted") or 0)
  end
  io.write(string.format("pre-signed requests exhausted: %d\\n", total))
end
"""

_worker: dict[str, object] = {}


def _init(pem: bytes, token: str, authority: str) -> None:
    _worker.update(key=load_private_key(pem), token=token, authority=authority)


def _batch(spec: tuple[int, int, str | None]) -> list[bytes]:
    count, now, authority = spec
    key = _worker["key"]
    assert isinstance(key, PrivateSigningKey)
    target = authority or str(_worker["authority"])
    return [signed_create(key, str(_worker["token"]), target, now) for _ in range(count)]


def signed_create(key: PrivateSigningKey, token: str, authority: str, now: int) -> bytes:
    """One raw HTTP/1.1 request: a fresh customer, key and nonce, signed as the SDK signs."""
    address = "0x" + secrets.token_hex(20)  # all lower case: valid without an EIP-55 checksum
    body = json.dumps(
        {"chainId": f"eip155:1:{address}", "externalId": f"bench-{uuid.uuid4().hex}"},
        separators=(",", ":"),
    ).encode()
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": str(uuid.uuid4())}
    signed = sign_headers(
        key,
        method="POST",
        authority=authority,
        path=CREATE_PATH,
        query="",
        headers=headers,
        body=body,
        now=now,
        nonce=new_nonce(),
    )
    lines = [
        f"POST {CREATE_PATH} HTTP/1.1",
        f"Host: {authority}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        *(f"{name}: {value}" for name, value in {**headers, **signed}.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + body


class Presigner:
    """A pool of signing processes for one partner key, kept for the whole bench."""

    def __init__(self, key: PrivateSigningKey, token: str, authority: str, workers: int) -> None:
        self._pool = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=get_context("spawn"),
            initializer=_init,
            initargs=(private_key_pem(key), token, authority),
        )
        self._workers = workers

    def write(
        self, path: pathlib.Path, count: int, now: int, *, authority: str | None = None
    ) -> None:
        """`count` requests into `path`, signed for `authority` (default: the pool's own;
        the plain-framework baseline listens on another host:port)."""
        per_batch = max(1, min(250, count // (self._workers * 4) or 1))
        sizes = [per_batch] * (count // per_batch)
        if count % per_batch:
            sizes.append(count % per_batch)
        with path.open("wb") as out:
            for batch in self._pool.map(_batch, [(size, now, authority) for size in sizes]):
                for raw in batch:
                    out.write(b"%d\n" % len(raw))
                    out.write(raw)

    def close(self) -> None:
        self._pool.shutdown(cancel_futures=True)
