-- Refusals that must come BEFORE the buffer filter, which holds a request until its body
-- has ended: a request whose body never ends, or that nobody may send, would otherwise be
-- held (up to 64 KiB of Envoy's memory each) and answered late or never.
--
-- 1. CONNECT asks for a tunnel: everything after its headers is the tunnel's bytes, so its
--    "body" ends only when the client hangs up, and the client waits for an answer that the
--    buffer filter never lets anyone give. We serve no tunnels (no route has a
--    connect_matcher): answer 405 at once.
-- 2. A REST request with a body but no Authorization header, for a method that needs a
--    token (TOKEN_BINDINGS, verb and path pattern, generated from the proto before this
--    code): it can only end in 401, so it gets its 401 now, before its body is read. (A
--    request with a token, even a bad one, is checked by the server once its body has
--    arrived: the check needs the body. Unknown paths keep their 404 / 405; native gRPC is
--    left to the server.)
-- Both answers become the same google.rpc.Status JSON as every other gateway error
-- (local_reply_config).

local ALLOWED = "GET, POST, PUT, PATCH, DELETE"

local function has_body(headers)
  local length = headers:get("content-length")
  if length ~= nil then
    return length ~= "0"
  end
  return headers:get("transfer-encoding") ~= nil
end

local function needs_token(method, target)
  local path = string.match(target, "^[^?]*")
  -- The /v1 alias, as request.lua strips it (a whole segment only).
  if path == "/v1" then
    path = "/"
  elseif string.sub(path, 1, 4) == "/v1/" then
    path = string.sub(path, 4)
  end
  for _, binding in ipairs(TOKEN_BINDINGS) do
    if binding[1] == method and string.find(path, binding[2]) then
      return true
    end
  end
  return false
end

function envoy_on_request(request_handle)
  local headers = request_handle:headers()
  local method = headers:get(":method")
  if method == "CONNECT" then
    request_handle:respond(
      { [":status"] = "405", ["allow"] = ALLOWED, ["connection"] = "close" },
      "CONNECT is not supported: this gateway serves the REST API only, no tunnels."
    )
    return
  end
  if headers:get("authorization") == nil and has_body(headers) then
    local content_type = headers:get("content-type") or ""
    if string.sub(content_type, 1, 16) ~= "application/grpc"
        and needs_token(method, headers:get(":path") or "") then
      request_handle:respond(
        { [":status"] = "401", ["connection"] = "close" },
        "Missing Authorization header (Bearer token)"
      )
    end
  end
end
