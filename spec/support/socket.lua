-- spec/support/socket.lua — a running `hum up` with its control socket, and a
-- raw Unix-socket client (LuaJIT FFI) for wire-level specs.
-- `require "support.socket"` gives H with
--   H.S, H.json         support.hum and cjson
--   H.connect(path)     a client: :send, :read_line, :read_json, :request,
--                       :nonblocking, :wait_eof, :shutdown, :close
--   H.sock(dir)         the documented socket path of a project directory
--   H.up(text, opts)    `hum up` on a config text, once its socket answers:
--   H.up_fixture(name)  :connect, :ask, :proc, :wait_state, :hum (the CLI in
--                       the project directory), :close
--
-- Every wait polls a condition with a generous deadline; nothing sleeps a
-- fixed time to let something happen.
local ffi = require "ffi"
local S = require "support.hum"
local cjson = require "cjson"

local function cdef(s) pcall(ffi.cdef, s) end
cdef [[ struct hum_sockaddr_un { unsigned short sun_family; char sun_path[108]; }; ]]
cdef [[ struct hum_pollfd { int fd; short events; short revents; }; ]]
cdef [[ int socket(int domain, int type, int protocol); ]]
cdef [[ int connect(int fd, const void *addr, unsigned int len); ]]
cdef [[ long send(int fd, const void *buf, unsigned long n, int flags); ]]
cdef [[ long recv(int fd, void *buf, unsigned long n, int flags); ]]
cdef [[ int close(int fd); ]]
cdef [[ int shutdown(int fd, int how); ]]
cdef [[ int fcntl(int fd, int cmd, ...); ]]
cdef [[ int poll(void *fds, unsigned long nfds, int timeout); ]]
cdef [[ int getuid(void); ]]
cdef [[ char *strerror(int errnum); ]]

local AF_UNIX, SOCK_STREAM, SOCK_CLOEXEC = 1, 1, 0x80000
local MSG_NOSIGNAL, MSG_DONTWAIT = 0x4000, 0x40
local F_GETFL, F_SETFL, O_NONBLOCK = 3, 4, 0x800
local POLLIN, POLLOUT = 1, 4
local EAGAIN, EINTR = 11, 4

local H = {}
H.S = S
H.json = cjson

-- Client -------------------------------------------------------------------------
local Conn = {}
Conn.__index = Conn

function H.connect(path)
	local fd = ffi.C.socket(AF_UNIX, SOCK_STREAM + SOCK_CLOEXEC, 0)
	assert(fd >= 0, "socket failed")
	local sa = ffi.new("struct hum_sockaddr_un")
	sa.sun_family = AF_UNIX
	ffi.copy(sa.sun_path, path)
	if ffi.C.connect(fd, sa, ffi.sizeof(sa)) ~= 0 then
		local e = ffi.errno()
		ffi.C.close(fd)
		return nil, ffi.string(ffi.C.strerror(e)), e
	end
	return setmetatable({ fd = fd, buf = "" }, Conn)
end

function Conn:nonblocking()
	local fl = ffi.C.fcntl(self.fd, F_GETFL)
	ffi.C.fcntl(self.fd, F_SETFL, ffi.cast("int", bit.bor(fl, O_NONBLOCK)))
	self.nb = true
end

-- Sends everything (blocking), or as much as fits (non-blocking): returns bytes sent.
function Conn:send(s)
	local sent = 0
	while sent < #s do
		local n = ffi.C.send(self.fd, ffi.cast("const char *", s) + sent, #s - sent, MSG_NOSIGNAL)
		if n < 0 then
			local e = ffi.errno()
			if e ~= EINTR then
				if e == EAGAIN then return sent end
				return sent, ffi.string(ffi.C.strerror(e))
			end
		else
			sent = sent + tonumber(n)
		end
	end
	return sent
end

local rbuf = ffi.new("char[65536]")

-- One line without the newline, or nil, "eof" / "timeout" / error text.
-- (buf holds unread bytes from pos on; compacted only when a read appends.)
function Conn:read_line(timeout)
	local deadline = S.now() + (timeout or S.TIMEOUT)
	self.pos = self.pos or 1
	while true do
		local nl = self.buf:find("\n", self.pos, true)
		if nl then
			local line = self.buf:sub(self.pos, nl - 1)
			self.pos = nl + 1
			return line
		end
		if self.eof then return nil, "eof" end
		local left = deadline - S.now()
		if left <= 0 then return nil, "timeout" end
		local p = ffi.new("struct hum_pollfd[1]")
		p[0].fd, p[0].events = self.fd, POLLIN
		local r = ffi.C.poll(p, 1, math.min(1000, math.ceil(left * 1000)))
		if r > 0 then
			local n = ffi.C.recv(self.fd, rbuf, 65536, MSG_DONTWAIT)
			if n > 0 then
				self.buf = self.buf:sub(self.pos) .. ffi.string(rbuf, n)
				self.pos = 1
			elseif n == 0 then
				self.eof = true
			else
				local e = ffi.errno()
				if e ~= EAGAIN and e ~= EINTR then self.eof = true self.err = e end
			end
		end
	end
end

function Conn:read_json(timeout)
	local line, err = self:read_line(timeout)
	if not line then return nil, err end
	local ok, v = pcall(cjson.decode, line)
	assert(ok, "not JSON: " .. line)
	return v, line
end

function Conn:request(t, timeout)
	self:send(cjson.encode(t) .. "\n")
	return self:read_json(timeout)
end

-- Waits for the server to close the connection (reading and discarding).
function Conn:wait_eof(timeout)
	local deadline = S.now() + (timeout or S.TIMEOUT)
	while S.now() < deadline do
		local line, err = self:read_line(deadline - S.now())
		if not line and err == "eof" then return true end
		if not line and err == "timeout" then return false end
	end
	return false
end

function Conn:shutdown() ffi.C.shutdown(self.fd, 1) end

function Conn:close()
	if self.fd then ffi.C.close(self.fd) end
	self.fd = nil
end

-- A running `hum up` --------------------------------------------------------------
local Up = {}
Up.__index = Up

-- The documented socket path: <realpath(dir)>/.hum/hum.sock, or when that
-- does not fit in sun_path (107 bytes), the path recorded in
-- .hum/hum.sock.path by the running hum ($XDG_RUNTIME_DIR/hum/<fnv>.sock or
-- a private mkdtemp directory /tmp/hum-<uid>-XXXXXX/hum.sock), or nil while
-- there is no record.
function H.sock(dir)
	local p = io.popen("realpath " .. S.q(dir))
	local real = p:read("*l")
	p:close()
	local primary = real .. "/.hum/hum.sock"
	if #primary < 108 then return primary end
	local f = io.open(real .. "/.hum/hum.sock.path")
	if not f then return nil end
	local path = f:read("*l")
	f:close()
	return path
end

-- Writes `text` as hum.lua in a fresh directory, starts `hum up` there and
-- waits until its socket answers a ping and `ready()` (optional, given the
-- up object) holds.
function H.up(text, opts)
	opts = opts or {}
	local file, dir = S.config(text, opts.dir)
	local args = { "up", "-f", file }
	for _, a in ipairs(opts.args or {}) do args[#args + 1] = a end
	local bg = S.start(args, { dir = S.tmpdir(), cwd = dir, env = opts.env })
	local u = setmetatable({ dir = dir, file = file, bg = bg, sock = H.sock(dir) }, Up)
	S.wait(function()
		if bg:code() then error("hum up exited early (" .. bg:code() .. "):\n" .. bg:output(), 0) end
		u.sock = H.sock(dir)
		if not u.sock then return false end
		local c = H.connect(u.sock)
		if not c then return false end
		local r = c:request({ cmd = "ping" }, 10)
		c:close()
		return r and r.ok
	end, nil, "the control socket")
	return u
end

-- A fixture config (spec/fixtures/srv_*.lua) copied into a fresh directory.
function H.up_fixture(name, opts)
	local text = assert(S.read(S.SPECFIX .. "/" .. name), "no fixture " .. name)
	return H.up(text, opts)
end

function Up:connect()
	local c, err = H.connect(self.sock)
	assert(c, "cannot connect: " .. tostring(err))
	return c
end

-- One request on a fresh connection.
function Up:ask(t, timeout)
	local c = self:connect()
	local r, line = c:request(t, timeout)
	c:close()
	return r, line
end

function Up:proc(name)
	local r = self:ask({ cmd = "status", name = name })
	return r and r.ok and r.procs[1] or nil
end

-- Waits until process name is in one of the states (a string or a set).
function Up:wait_state(name, states, timeout)
	if type(states) == "string" then states = { [states] = true } end
	return S.wait(function()
		local p = self:proc(name)
		return p and states[p.state] and p
	end, timeout, name .. " state")
end

-- Runs the hum CLI in the project directory: exit code, output.
function Up:hum(args, opts)
	opts = opts or {}
	opts.cwd = opts.cwd or self.dir
	return S.run(args, opts)
end

function Up:close()
	self.bg:close()
end

return H
