-- hum.cli.conn — the client side of the control socket, for the commands
-- that talk to a running `hum up`: finding its socket, connecting, one
-- request and its first reply, and the exit codes for what goes wrong.
--
-- The socket is found like the server finds it: the config (-f FILE, or
-- hum.lua in the real working directory or a parent) names the project
-- directory; the socket is <dir>/.hum/hum.sock or, for a path too long for
-- a Unix socket, a per-user runtime directory (raw.api_socket_path).  The
-- config itself is not loaded.
--
-- Exit status: 0 ok, 1 the operation failed, 2 usage error, 3 no running
-- instance (no config, no socket, or nobody listening).
local raw = require "hum.raw"
local util = require "hum.util"
local cjson = require "cjson"
local die = require("hum.cli").die

local M = {}

-- cjson's null -> nil
function M.null(v) if v == cjson.null then return nil end return v end
local null = M.null

-- Returns a connection or nil, exit code (after printing the reason).
function M.connect(opts)
	local file = opts.file and util.abspath(opts.file)
	if file then
		if not util.exists(file) then return nil, die(3, "no such file: %s", file) end
	else
		file = require("hum.config").find()
		if not file then
			return nil, die(3, "no hum.lua here or in a parent directory (use -f FILE); no running instance")
		end
	end
	local dir = util.dirname(file)
	local path, err = raw.api_socket_path(dir)
	if not path then return nil, die(3, "cannot find the control socket for %s: %s", dir, err) end
	local conn, cerr, code = raw.client_connect(path)
	if not conn then
		if code == "ENOENT" or code == "ENOTDIR" then
			return nil, die(3, "no running hum for %s (no socket %s)", dir, path)
		elseif code == "ECONNREFUSED" then
			return nil, die(3, "no running hum for %s (stale socket %s)", dir, path)
		end
		return nil, die(1, "cannot connect to %s: %s", path, cerr)
	end
	return conn
end

-- A connection to the hum running for config `file`, or nil when none
-- answers there (no socket, a stale one, or it cannot be reached): quiet,
-- for commands that behave differently when a hum runs (`hum run`).
function M.running(file)
	local path = raw.api_socket_path(util.dirname(file))
	if not path then return nil end
	return (raw.client_connect(path))
end

local next_id = 0
-- Sends one request; returns the decoded first response and its raw line,
-- or nil, message.
function M.request(conn, req, timeout)
	next_id = next_id + 1
	req.id = next_id
	local ok, err = conn:send(cjson.encode(req) .. "\n")
	-- a refusing server (another uid, too many clients) writes why and
	-- closes, possibly before the request is sent: read that first
	local line, e
	if ok then line, e = conn:read_line(timeout) else line, e = conn:read_line(1) end
	if not ok and not line then return nil, err end
	if not line then
		return nil, e == "eof" and "hum closed the connection" or e
	end
	local okd, resp = pcall(cjson.decode, line)
	if not okd or type(resp) ~= "table" then return nil, "bad response from hum: " .. line:sub(1, 200) end
	return resp, line
end

-- One round trip for the simple commands: resp, line, conn (still open), or
-- nil, exit code (after printing the reason).
function M.call(opts, req, timeout)
	local conn, code = M.connect(opts)
	if not conn then return nil, code end
	local resp, line = M.request(conn, req, timeout)
	if not resp then
		conn:close()
		return nil, die(1, "%s", line)
	end
	if not resp.ok then
		conn:close()
		return nil, die(1, "%s", tostring(null(resp.error) or "request failed"))
	end
	return resp, line, conn
end

return M
