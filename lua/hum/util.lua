-- hum.util — small helpers: paths and the working directory, URLs,
-- signals.  (Globs are selectors, matched in C: raw.select, runtime.select;
-- env files are read by hum.envfile.)
local raw = require "hum.raw"
local limits = require "hum.limits"

local M = {}

function M.signum(s) return raw.signum(s) end

function M.dirname(path)
	local d = path:match("^(.*)/[^/]*$")
	if d == nil then return "." end
	if d == "" then return "/" end
	return d
end

function M.basename(path) return path:match("[^/]*$") end

function M.resolve(base, path)
	if path:sub(1, 1) == "/" then return path end
	if base == "." or base == "" then return path end
	if path == "." or path == "" then return base end -- not "/project/."
	if base:sub(-1) == "/" then return base .. path end
	return base .. "/" .. path
end

-- The real working directory: getcwd(2), never $PWD (which a caller that
-- changed directory with env -C or a subprocess's cwd= leaves naming its
-- own); "." when it cannot be known (removed).
function M.cwd() return raw.getcwd() or "." end

-- An absolute path without "." and ".." components, lexically.
function M.normalize(path)
	local parts = {}
	if path:sub(1, 1) ~= "/" then path = M.resolve(M.cwd(), path) end
	for c in path:gmatch("[^/]+") do
		if c == ".." then parts[#parts] = nil
		elseif c ~= "." then parts[#parts + 1] = c end
	end
	return "/" .. table.concat(parts, "/")
end

-- path made absolute from the real working directory, with its directory
-- resolved by realpath(3) (symbolic links, "..") and its last component
-- kept: a hum.lua that is a symbolic link belongs to the directory it is
-- in.  Lexical when the directory does not exist.
function M.abspath(path)
	local full = M.normalize(path)
	local dir = raw.realpath(M.dirname(full))
	if not dir then return full end
	return M.resolve(dir, M.basename(full))
end

-- The real path of a directory that may not exist yet (lexical then).
function M.realdir(path) return raw.realpath(path) or M.normalize(path) end

-- Whether path is a regular file this user may execute.
function M.executable(path) return raw.executable(path) end

function M.exists(path)
	local f = io.open(path, "r")
	if f then f:close() return true end
	return false
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
	if not limits.check(tonumber(port), "port") then return nil, "bad port in " .. url end
	port = tonumber(port)
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
