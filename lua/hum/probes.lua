-- hum.probes — readiness and liveness probes, and hum.exec's plumbing.
--
-- A probe is a table made by hum.ready.* (kind, interval, timeout, retries).
-- Readiness: checked every `interval` from the moment the process runs until
-- it passes (raw.set_ready), or gives up: when `timeout` passes, or, if
-- `retries` was given, after that many consecutive failed checks.  A probe
-- that gives up leaves the process running, its reason says why, and
-- dependents waiting for `ready` are blocked.  Readiness is not checked
-- again once it passed (that is liveness's job), so "consecutive" means
-- every check so far; without `retries` failures are retried until the
-- timeout, as a process that is still booting is the normal case.
-- Liveness: checked every `interval` once ready; `retries` (default 3)
-- consecutive failures end the run as a failure (raw.fail): stop signal and
-- grace, then the restart policy decides (backoff, max; policy "no" acts as
-- on-failure), so a failing probe never makes a tight restart loop.  Checks
-- run on the loop (non-blocking connects, exec'd children; a host name is
-- resolved on a worker thread, `localhost` is both ::1 and 127.0.0.1:
-- core/sup/probe.c); nothing here waits.  Exec probes run with the
-- process's environment (i.env: hum.env, env files, its `env`, HUM_PROCESS)
-- in its working directory.
local raw = require "hum.raw"
local reactions = require "hum.reactions"
local util = require "hum.util"

local M = {}
local pending = {} -- raw probe/exec id -> callback(ok, detail...)

-- A "probe" or "exec" event (lua/bind/raw_async.c) for a pending callback.
function M.on_event(ev)
	local key = ev.kind .. ev.id
	local cb = pending[key]
	if not cb then return end
	pending[key] = nil
	if ev.kind == "probe" then
		cb(ev.ok, ev.status, ev.error or "")
	else
		cb(ev.code, ev.signo, ev.stdout, ev.stderr, ev.error)
	end
end

-- The environment of an exec'd command: hum's own with `changes` (a
-- table; false unsets), or, when `changes` is a list of "K=V" strings, that
-- complete environment (a process's own, for its probes); PWD names the
-- directory it runs in either way.
local function exec_env(changes, cwd)
	local e
	if changes and changes[1] ~= nil then
		e = {}
		for _, kv in ipairs(changes) do
			local k, v = kv:match("^([^=]*)=(.*)$")
			if k then e[k] = v end
		end
		changes = nil
	else
		e = raw.environ()
	end
	e.PWD = util.realdir(cwd or ".")
	for k, v in pairs(changes or {}) do e[k] = v ~= false and tostring(v) or nil end
	local list = {}
	for k, v in pairs(e) do list[#list + 1] = k .. "=" .. v end
	return list
end

-- Runs cmd (opts: cwd, env changes, input, timeout); calls cb(code, signal,
-- stdout, stderr, err) when it finishes.
function M.exec(cmd, opts, cb)
	local spec = { timeout = opts.timeout or 0, input = opts.input, cwd = opts.cwd, env = exec_env(opts.env, opts.cwd) }
	if type(cmd) == "table" then
		spec.argv = {}
		for i, a in ipairs(cmd) do spec.argv[i] = tostring(a) end
	else
		spec.shell = cmd
	end
	local id, err = raw.exec(spec)
	if not id then return nil, err end
	pending["exec" .. id] = cb
	return id
end

-- One check of probe pr; calls done(ok, why).
local function check(i, pr, done)
	local t = math.max(0.1, math.min(pr.interval * 4, 10))
	if pr.__probe == "tcp" then
		local id = raw.probe_tcp(pr.host, pr.port, t)
		pending["probe" .. id] = function(ok, _, err) done(ok, err) end
	elseif pr.__probe == "http" then
		local id = raw.probe_http(pr.host, pr.port, pr.path, t)
		pending["probe" .. id] = function(ok, status, err)
			if ok and status >= 200 and status < 400 then return done(true) end
			done(false, status > 0 and ("HTTP %d"):format(status) or err)
		end
	elseif pr.__probe == "exec" then
		-- the process's own environment and directory: a probe checks
		-- what the process sees (its env, hum.env, env files, HUM_PROCESS)
		local ok, err = M.exec(pr.cmd, { timeout = t, cwd = i.cwd, env = i.env }, function(code, sig, _, _, e)
			if code == 0 then return done(true) end
			done(false, e or (sig ~= 0 and ("killed by SIG" .. raw.signame(sig))) or ("exit code " .. tostring(code)))
		end)
		if not ok then done(false, err) end
	else
		done(false, "probe kind " .. tostring(pr.__probe) .. " cannot run here")
	end
end

local function stop_timers(i)
	if i.probe_timer then reactions.cancel_timer(i.probe_timer) i.probe_timer = nil end
	if i.probe_deadline then reactions.cancel_timer(i.probe_deadline) i.probe_deadline = nil end
end

function M.stop(i)
	stop_timers(i)
	i.probe_line = nil
	require("hum.runtime").line_interest(i, false)
	i.probe_gen = (i.probe_gen or 0) + 1 -- results of checks in flight are ignored
end

function M.start_ready(i)
	M.stop(i)
	local pr = i.def.ready_probe
	local gen = i.probe_gen
	i.probe_failed = nil
	if pr.timeout > 0 then
		i.probe_deadline = reactions.new_timer(pr.timeout, 0, function()
			i.probe_deadline = nil
			if i.probe_gen ~= gen or require("hum.runtime").ready_now(i) then return end
			M.stop(i)
			i.probe_failed = true
			raw.set_reason(i.id, ("not ready: %s probe gave up after %gs%s"):format(pr.__probe, pr.timeout,
				i.probe_why and (" (" .. i.probe_why .. ")") or ""))
			raw.log(("%s: readiness probe timed out after %gs"):format(i.name, pr.timeout))
			require("hum.runtime").changed(i)
		end)
	end
	if pr.__probe == "line" then
		i.probe_line = pr.pattern
		require("hum.runtime").line_interest(i, true)
		return
	end
	local failures = 0
	local function attempt()
		i.probe_timer = nil
		check(i, pr, function(ok, why)
			if i.probe_gen ~= gen then return end
			if ok then
				stop_timers(i)
				raw.set_ready(i.id)
				return
			end
			i.probe_why = why
			failures = failures + 1
			if pr.retries and pr.retries > 0 and failures >= pr.retries then
				M.stop(i)
				i.probe_failed = true
				raw.set_reason(i.id, ("not ready: %s probe failed %d times in a row (%s)"):format(pr.__probe,
					failures, why or "?"))
				raw.log(("%s: readiness probe failed %d times in a row (%s)"):format(i.name, failures, why or "?"))
				require("hum.runtime").changed(i)
				return
			end
			i.probe_timer = reactions.new_timer(pr.interval, 0, attempt)
		end)
	end
	attempt()
end

function M.start_liveness(i)
	local pr = i.def.liveness
	local gen = i.probe_gen
	local failures = 0
	local function attempt()
		i.probe_timer = nil
		check(i, pr, function(ok, why)
			if i.probe_gen ~= gen then return end
			if ok then
				failures = 0
			else
				failures = failures + 1
				if failures >= math.max(1, pr.retries or 3) then
					local what = ("liveness probe failed %d times in a row (%s)"):format(failures, why or "?")
					raw.log(("%s: %s"):format(i.name, what))
					M.stop(i)
					-- a failure for the restart policy (backoff, max), never an
					-- immediate respawn; the new run passes the start gate
					raw.fail(i.id, what)
					return
				end
			end
			i.probe_timer = reactions.new_timer(pr.period or pr.interval, 0, attempt)
		end)
	end
	i.probe_timer = reactions.new_timer(pr.period or pr.interval, 0, attempt)
end

return M
