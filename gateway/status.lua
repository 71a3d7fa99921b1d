-- Exact REST statuses for transcoded calls.
--
-- The transcoder can only answer 200 for a successful gRPC call, and maps gRPC error codes
-- to a fixed set of HTTP statuses (none of them 201, 202, 204 or 422). The server therefore
-- sends the status it wants as initial metadata `x-http-status`, which reaches Envoy as a
-- response header. This filter sits FIRST in http_filters, so on the response path it runs
-- LAST, after the transcoder has turned the gRPC answer into JSON.
--
--   2xx: replaces :status only when it is 200, so a call that announced 201 and then
--        failed keeps the error status the transcoder derived from the gRPC code.
--   4xx: always replaces :status (409/422 on top of FAILED_PRECONDITION's 400, say).
--   202/204 also drop the body: the transcoder renders google.protobuf.Empty as `{}`.
-- Anything else is ignored; the header is always removed from REST answers.
--
-- The gRPC protocol headers the transcoder leaves in a REST answer's headers (grpc-status:
-- 0, grpc-message, grpc-accept-encoding) are removed too. (HTTP/2 REST clients still get
-- grpc-status in trailers: stripping those would mean waiting for the end of every
-- answer, server streams included.)
--
-- Native gRPC answers (content-type application/grpc*) pass through untouched: a gRPC
-- client needs :status 200 and its grpc-* headers, and may read x-http-status itself.

local HEADER = "x-http-status"
local GRPC_HEADERS = {
  "grpc-status", "grpc-message", "grpc-accept-encoding", "grpc-encoding",
  "grpc-status-details-bin",
}

function envoy_on_response(response_handle)
  local headers = response_handle:headers()
  local content_type = headers:get("content-type") or ""
  if string.sub(content_type, 1, 16) == "application/grpc" then
    return
  end
  for _, name in ipairs(GRPC_HEADERS) do
    headers:remove(name)
  end
  local wanted = headers:get(HEADER)
  if wanted == nil then
    return
  end
  headers:remove(HEADER)

  local status = tonumber(wanted)
  if status == nil or status ~= math.floor(status) then
    return
  end
  local current = headers:get(":status")
  if status >= 200 and status < 300 then
    if current ~= "200" then
      return
    end
  elseif not (status >= 400 and status < 500) then
    return
  end
  headers:replace(":status", tostring(status))
  -- A server stream refused before its first message (bad cursor, say) still carries the
  -- stream's text/event-stream, but its body is the google.rpc.Status JSON.
  if status >= 400 and content_type == "text/event-stream" then
    headers:replace("content-type", "application/json")
  end

  if status == 204 or status == 202 then
    headers:remove("content-type")
    headers:remove("content-length")
    -- body(true) waits for the whole (small) body and wraps even an absent one, so the
    -- `{}` of an Empty answer is replaced by nothing. Only done for these two statuses:
    -- buffering a streamed (SSE) answer here would hold it back until it ends.
    response_handle:body(true):setBytes("")
  end
end
