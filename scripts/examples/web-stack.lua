-- A web stack: a database ready on TCP, a migration task, an API that is
-- ready when it logs its address, and a worker restarted when it logs a
-- fatal pattern.  The programs are small shell/LuaJIT stand-ins so the
-- example runs anywhere: `hum up -f scripts/examples/web-stack.lua`.
local hum = require "hum"

local PORT = tonumber(os.getenv("WEB_STACK_DB_PORT")) or 15432

-- a stand-in database: listens on PORT (LuaJIT FFI), echoes a banner
local db = hum.service "db" {
	cmd = { "luajit", "-e", ([[
local ffi = require "ffi"
ffi.cdef[=[int socket(int,int,int); int bind(int,const void*,unsigned); int listen(int,int);
int accept(int,void*,void*); int close(int); int setsockopt(int,int,int,const void*,unsigned);
struct sa { unsigned short fam; unsigned short port; unsigned int addr; char z[8]; };]=]
local s = ffi.C.socket(2, 1, 0)
ffi.C.setsockopt(s, 1, 2, ffi.new("int[1]", 1), 4)
local a = ffi.new("struct sa", 2, bit.bor(bit.rshift(%d, 8), bit.lshift(bit.band(%d, 255), 8)), 0x0100007f)
assert(ffi.C.bind(s, a, 16) == 0, "port busy")
ffi.C.listen(s, 64)
print("db: accepting connections on %d") io.stdout:flush()
while true do ffi.C.close(ffi.C.accept(s, nil, nil)) end]]):format(PORT, PORT, PORT) },
	ready = hum.ready.tcp(PORT),
	stop = { signal = "INT", grace = 3 },
}

local migrate = hum.task "migrate" {
	desc = "apply migrations",
	cmd = [[for m in 001_init 002_users; do echo "migrate: $m"; sleep 0.2; done]],
	after = { db = "ready" },
}

local api = hum.service "api" {
	cmd = [[echo "api: listening on http://127.0.0.1:8080"; while :; do sleep 2; echo "api: GET /health 200"; done]],
	after = { migrate = "succeeded" },
	ready = hum.ready.line "listening on (http://%S+)",
	restart = "on-failure",
}

local worker = hum.service "worker" {
	cmd = [[n=0; while :; do n=$((n+1)); echo "worker: job $n done"; [ $n -eq 4 ] && echo "worker: FATAL lost queue connection" >&2; sleep 0.5; done]],
	after = { api = "ready" },
}

hum.group "backend" { db, migrate, api, worker }

api:on("ready", function(ev) hum.log.info("api ready at " .. ev.captures[1]) end)

-- the worker does not exit on a fatal error; restart it when it says so
worker:on("line", { "FATAL", stream = "err" }, function(ev)
	hum.log.warn("worker reported: " .. ev.line .. " — restarting it")
	worker:restart()
end)
