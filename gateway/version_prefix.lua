-- Serves every REST path under /v1 as well: `/v1/customers/x?a=b` -> `/customers/x?a=b`.
--
-- A route's prefix_rewrite does not help: the transcoder matches the incoming path against
-- the proto's http bindings before routing. This filter therefore runs BEFORE the
-- transcoder, and after anything (ext_authz) that must see the path as the client sent it.
--
-- The path as received (query included) is kept in `x-original-path`; a client-supplied
-- value is always overwritten, so the server can trust it as the gateway's.

local HEADER = "x-original-path"

local function strip_version(path)
  -- Only a whole `/v1` segment: `/v1`, `/v1/...`, `/v1?...`; never `/v1x...`.
  if path == "/v1" then
    return "/"
  end
  local rest_char = string.sub(path, 4, 4)
  if string.sub(path, 1, 3) == "/v1" and (rest_char == "/" or rest_char == "?") then
    local rest = string.sub(path, 4)
    if rest_char == "?" then
      return "/" .. rest
    end
    return rest
  end
  return path
end

function envoy_on_request(request_handle)
  local headers = request_handle:headers()
  local path = headers:get(":path")
  headers:remove(HEADER)
  if path == nil then
    return
  end
  headers:add(HEADER, path)
  local stripped = strip_version(path)
  if stripped ~= path then
    headers:replace(":path", stripped)
  end
end
