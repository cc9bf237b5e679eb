-- keygate.lua: an auth-request action for HAProxy (2.6 or later, built
-- with Lua: see "haproxy -vv"). HAProxy has no auth_request of its own;
-- this action asks keygate's forward-auth endpoint about each request with
-- HAProxy's built-in HTTP client.
--
--   global
--       lua-load /etc/haproxy/keygate.lua
--   frontend api
--       http-request lua.keygate http://127.0.0.1:8080/v1/authz
--
-- or, with keygate on a Unix-domain socket (--addr unix:PATH), the
-- socket in HAProxy's address syntax:
--
--       http-request lua.keygate unix@/run/keygate/check.sock
--
-- Allowed (200): the request goes on with keygate's identity headers
-- (X-Keygate-Key-Id, X-Keygate-Key-Name, X-Keygate-Scopes) set on it,
-- replacing whatever the client sent under those names.
-- Denied (401, 403): the client gets keygate's answer as it is: status,
-- JSON body, WWW-Authenticate and X-Keygate-Error-* headers.
-- keygate unreachable or any other answer: 503 with a JSON error body;
-- the request never reaches the API.
--
-- keygate learns the client address from X-Forwarded-For, set here to
-- HAProxy's "src" (after any "http-request set-src" of yours), so run
-- keygate with --trusted-proxies naming the address HAProxy connects from.

local identity = { "X-Keygate-Key-Id", "X-Keygate-Key-Name", "X-Keygate-Scopes" }
local passed_back = { "content-type", "www-authenticate", "x-keygate-error-code", "x-keygate-error-message" }

-- first returns the first value of header name in an httpclient response
-- (header names are lower case there; value lists may start at 0 or 1).
local function first(headers, name)
	local v = headers and headers[name]
	if type(v) ~= "table" then
		return v
	end
	if v[0] ~= nil then
		return v[0]
	end
	return v[1]
end

local function unavailable(txn)
	local reply = txn:reply()
	reply:set_status(503)
	reply:add_header("content-type", "application/json")
	reply:add_header("cache-control", "no-store")
	reply:set_body('{"error":{"code":"UNAVAILABLE","message":"The authorization service did not answer"}}')
	txn:done(reply)
end

-- target returns the URL and the destination address (nil: the URL's
-- host) of the action's argument: a URL, or unix@PATH for keygate's
-- forward-auth endpoint on a Unix-domain socket.
local function target(arg)
	if arg:sub(1, 5) == "unix@" then
		return "http://localhost/v1/authz", arg
	end
	return arg, nil
end

local function authorize(txn, arg)
	local url, dst = target(arg)
	-- Only what keygate decides on is sent: the key, the client address
	-- and the original method and URI. Nothing else the client sent
	-- (a forged X-Forwarded-For or X-Forwarded-Uri among it) goes along.
	local headers = {
		["X-Forwarded-For"] = { txn.f:src() },
		["X-Forwarded-Method"] = { txn.f:method() },
		-- pathq, not url: over HTTP/2 (and for an absolute-form HTTP/1.1
		-- request) url is "https://host/path", pathq always "/path?query".
		["X-Forwarded-Uri"] = { txn.f:pathq() },
	}
	local req = txn.http:req_get_headers()
	if req["authorization"] ~= nil then
		headers["Authorization"] = { req["authorization"][0] }
	end
	if req["x-api-key"] ~= nil then
		headers["X-Api-Key"] = { req["x-api-key"][0] }
	end

	local ok, res = pcall(function()
		return core.httpclient():get({ url = url, dst = dst, headers = headers, timeout = 1000 })
	end)
	if not ok or res == nil or res.status == nil then
		core.Warning("keygate: no answer from " .. arg .. ": " .. tostring(res))
		return unavailable(txn)
	end

	if res.status == 200 then
		for _, name in ipairs(identity) do
			txn.http:req_set_header(name, first(res.headers, name:lower()) or "")
		end
		return
	end
	if res.status ~= 401 and res.status ~= 403 then
		core.Warning("keygate: unexpected status " .. tostring(res.status) .. " from " .. arg)
		return unavailable(txn)
	end
	local reply = txn:reply()
	reply:set_status(res.status)
	for _, name in ipairs(passed_back) do
		local v = first(res.headers, name)
		if v ~= nil then
			reply:add_header(name, v)
		end
	end
	reply:add_header("cache-control", "no-store")
	reply:set_body(res.body or "")
	txn:done(reply)
end

core.register_action("keygate", { "http-req" }, authorize, 1)
