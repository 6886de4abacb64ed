-- hum.util — small pure helpers: paths, env files, URLs, signals.  (Globs are
-- selectors, matched in C: raw.select, runtime.select.)
local raw = require "hum.raw"

local M = {}

function M.signum(s) return raw.signum(s) end

function M.dirname(path)
	local d = path:match("^(.*)/[^/]*$")
	if d == nil then return "." end
	if d == "" then return "/" end
	return d
end

function M.resolve(base, path)
	if path:sub(1, 1) == "/" then return path end
	if base == "." or base == "" then return path end
	return base .. "/" .. path
end

function M.exists(path)
	local f = io.open(path, "r")
	if f then f:close() return true end
	return false
end

-- KEY=VALUE lines: `export` prefix, # comments, single quotes (literal),
-- double quotes (escapes \n \" \\ and ${VAR}), bare values (${VAR}, trailing
-- comment after whitespace).  lookup(name) resolves ${VAR} from earlier
-- definitions.  Returns a list of { key, value } or nil, "file:line: message".
function M.parse_env(text, name, lookup)
	local out, vars = {}, {}
	local function get(k)
		if vars[k] ~= nil then return vars[k] end
		return lookup and lookup(k) or nil
	end
	local function expand(s)
		return (s:gsub("%${([%w_]+)}", function(k) return get(k) or "" end)
			:gsub("%$([%a_][%w_]*)", function(k) return get(k) or "" end))
	end
	local lineno = 0
	for line in (text .. "\n"):gmatch("([^\n]*)\n") do
		lineno = lineno + 1
		line = line:gsub("\r$", "")
		local s = line:gsub("^%s+", "")
		if s ~= "" and s:sub(1, 1) ~= "#" then
			s = s:gsub("^export%s+", "")
			local k, rest = s:match("^([%a_][%w_%.]*)%s*=%s*(.*)$")
			if not k then return nil, ("%s:%d: expected KEY=VALUE"):format(name, lineno) end
			local v
			local q = rest:sub(1, 1)
			if q == "'" then
				v = rest:match("^'([^']*)'")
				if not v then return nil, ("%s:%d: unterminated single quote"):format(name, lineno) end
			elseif q == '"' then
				local body = rest:match('^"(.-[^\\])"') or rest:match('^"()"') and ""
				if not body then return nil, ("%s:%d: unterminated double quote"):format(name, lineno) end
				v = expand(body:gsub("\\(.)", { n = "\n", t = "\t", ['"'] = '"', ["\\"] = "\\", ["$"] = "\1" })):gsub("\1", "$")
			else
				v = expand((rest:gsub("%s+#.*$", ""):gsub("%s+$", "")))
			end
			vars[k] = v
			out[#out + 1] = { k, v }
		end
	end
	return out
end

function M.read_env_file(path, lookup)
	local f, err = io.open(path, "r")
	if not f then return nil, err end
	local text = f:read("*a")
	f:close()
	return M.parse_env(text, path, lookup)
end

-- "http://host:port/path" -> host, port, path | nil, message.  The host is
-- kept as written (brackets of an IPv6 literal removed): `localhost` is
-- resolved by the probe to both loopbacks, ::1 and 127.0.0.1 (core/sup/probe.c).
function M.parse_url(url)
	local rest = url:match("^http://(.+)$")
	if not rest then return nil, "only http:// URLs are supported: " .. url end
	local hostport, path = rest:match("^([^/]+)(/.*)$")
	if not hostport then hostport, path = rest, "/" end
	local host, port = hostport:match("^%[(.+)%]:(%d+)$")
	if not host then host, port = hostport:match("^([^:]+):(%d+)$") end
	if not host then host, port = hostport, 80 end
	port = tonumber(port)
	if not port or port < 1 or port > 65535 then return nil, "bad port in " .. url end
	return host, port, path
end

function M.fmt_duration(s)
	local f = math.floor
	if s < 60 then return ("%ds"):format(f(s)) end
	if s < 3600 then return ("%dm%02ds"):format(f(s / 60), f(s % 60)) end
	if s < 86400 then return ("%dh%02dm"):format(f(s / 3600), f(s % 3600 / 60)) end
	return ("%dd%02dh"):format(f(s / 86400), f(s % 86400 / 3600))
end

return M
