-- Refusals that must come BEFORE the buffer filter, which holds a request until its body
-- has ended: a request whose body never ends would otherwise get no answer at all.
--
-- CONNECT asks for a tunnel: everything after its headers is the tunnel's bytes, so its
-- "body" ends only when the client hangs up, and the client waits for an answer that the
-- buffer filter never lets anyone give. We serve no tunnels (no route has a
-- connect_matcher): answer 405 at once, which local_reply_config turns into the same
-- google.rpc.Status JSON as every other gateway error.

local ALLOWED = "GET, POST, PUT, PATCH, DELETE"

function envoy_on_request(request_handle)
  if request_handle:headers():get(":method") == "CONNECT" then
    request_handle:respond(
      { [":status"] = "405", ["allow"] = ALLOWED, ["connection"] = "close" },
      "CONNECT is not supported: this gateway serves the REST API only, no tunnels."
    )
  end
end
