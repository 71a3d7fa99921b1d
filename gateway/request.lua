-- Request side of REST calls, run BEFORE the transcoder. There is no separate check call:
-- the server verifies token, RFC 9421 signature and Content-Digest itself, on the one
-- transcoded call, from what this filter forwards about the request as the client sent it.
--
-- 1. The REST request as received, for the server's verifier (server/interceptors/auth.py):
--      x-gateway-method     the HTTP method
--      x-gateway-authority  the Host / :authority the client addressed
--      x-gateway-target     the raw path and query, before any rewrite
--      x-gateway-body       base64 of the raw body bytes (absent without a body); the
--                           transcoder builds the message from these very bytes, so the
--                           body the handler runs on is the body the Content-Digest covers
--    Every client-supplied `x-gateway-*` header is removed first, on every request, gRPC
--    included. The server trusts these headers only on calls that reach it over the
--    gateway's own Unix socket, which no outside caller can connect to (docs/DECISIONS.md).
-- 2. /v1 prefix: `/v1/customers/x?a=b` -> `/customers/x?a=b`. A route's prefix_rewrite does
--    not help, because the transcoder matches the path against the proto's http bindings
--    before routing.
-- 3. Hygiene, so odd input answers 4xx instead of failing inside the gRPC server (500):
--    - a path or query that is not UTF-8 once percent-decoded is refused with 400 (the
--      transcoder would put the bytes in a proto string field, which the server cannot
--      parse);
--    - `grpc-*` and `*-bin` headers are dropped: they are gRPC protocol and binary metadata,
--      meaningless on REST, and a bad value (`grpc-timeout: x`, non-base64 `-bin`) makes the
--      gRPC server fail the call;
--    - so are headers gRPC metadata cannot carry: a name outside [0-9a-z-_.] (HTTP allows
--      `!#$%&'*+^`|~`) or a value outside printable ASCII (HTTP allows obs-text), and `te`
--      (gRPC's own hop-by-hop header). grpc-core refuses the whole call on one of those
--      ("Illegal header key", found by the contract fuzz): a 500 instead of the answer.
-- Native gRPC calls (content-type application/grpc*) get step 1's removal only: the server
-- verifies them as native calls, over the serialized message.

local PREFIX = "x-gateway-"
local function is_grpc(headers)
  local content_type = headers:get("content-type") or ""
  return string.sub(content_type, 1, 16) == "application/grpc"
end

local function strip_version(path)
  -- Only a whole `/v1` segment: `/v1`, `/v1/...`, `/v1?...`; never `/v1x...`.
  if string.sub(path, 1, 3) ~= "/v1" then
    return path
  end
  local next_char = string.sub(path, 4, 4)
  if next_char == "" then
    return "/"
  elseif next_char == "/" then
    return string.sub(path, 4)
  elseif next_char == "?" then
    return "/" .. string.sub(path, 4)
  end
  return path
end

local function percent_decode(s)
  return (string.gsub(s, "%%(%x%x)", function(hex)
    return string.char(tonumber(hex, 16))
  end))
end

-- Strict UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF.
local function is_utf8(s)
  local i, n = 1, #s
  while i <= n do
    local c = string.byte(s, i)
    local len
    if c < 0x80 then
      len = 1
    elseif c >= 0xC2 and c <= 0xDF then
      len = 2
    elseif c >= 0xE0 and c <= 0xEF then
      len = 3
    elseif c >= 0xF0 and c <= 0xF4 then
      len = 4
    else
      return false
    end
    if len > 1 then
      if i + len - 1 > n then
        return false
      end
      for j = i + 1, i + len - 1 do
        local cc = string.byte(s, j)
        if cc < 0x80 or cc > 0xBF then
          return false
        end
      end
      local c2 = string.byte(s, i + 1)
      if (c == 0xE0 and c2 < 0xA0) or (c == 0xED and c2 > 0x9F)
          or (c == 0xF0 and c2 < 0x90) or (c == 0xF4 and c2 > 0x8F) then
        return false
      end
    end
    i = i + len
  end
  return true
end

-- One pass over the headers (this runs on every request): the names to remove are those a
-- client may not send us, `x-gateway-*` always, and on REST also `grpc-*` and `*-bin`.
local function drop_headers(headers, rest)
  local doomed = {}
  for key, value in pairs(headers) do
    if string.sub(key, 1, #PREFIX) == PREFIX
        or (rest and (string.sub(key, 1, 5) == "grpc-" or string.sub(key, -4) == "-bin"
          or key == "te"
          or (string.sub(key, 1, 1) ~= ":"
            and (string.find(key, "[^0-9a-z%-_%.]") or string.find(value, "[^\32-\126]"))))) then
      doomed[#doomed + 1] = key
    end
  end
  for _, key in ipairs(doomed) do
    headers:remove(key)
  end
end

function envoy_on_request(request_handle)
  local headers = request_handle:headers()
  local path = headers:get(":path")
  if path == nil or is_grpc(headers) then
    drop_headers(headers, false)
    return
  end

  -- Fast path: nothing percent-encoded and nothing non-ASCII cannot be invalid UTF-8.
  if string.find(path, "[%%\128-\255]") and not is_utf8(percent_decode(path)) then
    request_handle:respond(
      { [":status"] = "400" },
      "The request path or query is not valid UTF-8 once percent-decoded."
    )
    return
  end
  drop_headers(headers, true)

  -- The buffer filter before this one already holds the whole body (at most 64 KiB).
  -- body() yields until the body is in; the header map must be fetched again after it (a
  -- handle taken before does not write to the request any more).
  local body = request_handle:body()
  headers = request_handle:headers()
  headers:add(PREFIX .. "method", headers:get(":method"))
  headers:add(PREFIX .. "authority", headers:get(":authority") or "")
  headers:add(PREFIX .. "target", path)
  if body ~= nil and body:length() > 0 then
    headers:add(PREFIX .. "body", request_handle:base64Escape(body:getBytes(0, body:length())))
  end

  local stripped = strip_version(path)
  if stripped ~= path then
    headers:replace(":path", stripped)
  end
end
