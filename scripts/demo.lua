-- The demo environment `make run` starts: a service that becomes ready on a
-- log line, a migration task it waits for, a web front end that depends on
-- both, a worker that crashes and is restarted with backoff, and reactions.
-- Press Ctrl-C to stop everything in reverse dependency order.
local hum = require "hum"

local db = hum.service "db" {
	cmd = [[echo "db: starting"; sleep 0.5; echo "db: ready to accept connections"; while :; do sleep 1; done]],
	ready = hum.ready.line "ready to accept connections",
	stop = { signal = "INT", grace = 2 },
}

local migrate = hum.task "migrate" {
	desc = "apply database migrations",
	cmd = [[for m in 001_users 002_orders; do echo "applying $m"; sleep 0.3; done; echo "migrations done"]],
	after = { db = "ready" },
}

local api = hum.service "api" {
	cmd = [[echo "api: listening on http://127.0.0.1:8080"; i=0
		while :; do i=$((i+1)); echo "GET /orders 200 (request $i)"; sleep 0.7; done]],
	after = { migrate = "succeeded" },
	ready = hum.ready.line "listening on (http://%S+)",
}

local worker = hum.service "worker" {
	cmd = [[echo "worker: picking jobs"; sleep 2; echo "worker: lost connection to queue" >&2; exit 3]],
	after = { db = "ready" },
	restart = { policy = "on-failure", max = 3, backoff = { 0.5, 4 } },
}

hum.group "backend" { db, migrate, api, worker }

api:on("ready", function(ev)
	hum.log.info("api is up at " .. (ev.captures[1] or "?"))
end)

api:on("line", "request (%d+)", function(ev, n)
	if tonumber(n) % 5 == 0 then hum.log.info(("api has served %s requests"):format(n)) end
end)

worker:on("exit", function(ev)
	if ev.state == "backoff" then
		hum.log.warn(("worker crashed (exit code %s); the demo's restart policy brings it back"):format(ev.code))
	end
end)

hum.on("ready", function()
	hum.log.info("everything is up; press Ctrl-C to stop")
end)
