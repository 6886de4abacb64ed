-- hum.cli.run — `hum run TASK`: run a task and its dependency graph.
--
-- Every task in the graph runs once, as soon as its dependencies allow, with
-- at most `jobs` tasks running at a time (default: the number of cores).
-- Services the graph needs are started and stopped around it.
--
-- What ends `hum run` (README, "Lifecycle rules"):
--   * the target task ends: hum exits with its code (0 when it succeeded);
--   * a task of the graph fails: hum stops and exits with that task's code
--     (with --keep-going, only once nothing else of the graph can run);
--   * the target can never start (something it waits for failed, was
--     stopped, exited without becoming ready, gave up its readiness probe,
--     exhausted its restart policy): hum says why, stops the services it
--     started and exits 1 (--keep-going: once no other task of the graph is
--     running or can still start);
--   * nothing can make progress any more: the outcome's code.
--
-- When a `hum up` already runs for the same project, the task runs inside
-- it instead (see `remote` below): its services are reused, and Ctrl-C
-- stops the task, not the environment.
local config = require "hum.config"
local die = require("hum.cli").die

local M = {}

local function shell_quote(s)
	if s:match("^[%w%-%./_=:,@]+$") then return s end
	return "'" .. s:gsub("'", "'\\''") .. "'"
end

-- The exit code of `hum run` for a task's final state.
local function task_code(state, exit_code)
	if state == "succeeded" then return 0 end
	return (exit_code and exit_code > 0) and exit_code or 1
end

-- Runs the task inside the hum that listens on `c` (a `hum up` of the same
-- project), over its control socket:
--   1. {"cmd":"run","task":T} on c: the server starts T like `hum start T`
--      and answers once T's run is over (state, exit code, the run's log
--      range) or with an error when T can never start;
--   2. meanwhile, on a second connection, `logs` of T since the moment
--      before the request, with follow: the lines T printed before the
--      follow began come first, then new ones as they come (the server's
--      follow polls every 50 ms: after the answer, lines are read until the
--      run's last one, for at most 5 s);
--   3. Ctrl-C (or TERM/HUP) sends {"cmd":"stop","targets":[T]} on a third
--      connection and waits for the answer of 1: the environment keeps
--      running; hum run exits 128+N (at once on a second signal).
-- Arguments after -- cannot be passed: the running hum registered T's
-- command when it started.
local function remote(c, file, target, opts)
	local raw = require "hum.raw"
	local cjson = require "cjson"
	local conn = require "hum.cli.conn"
	local fmt = require "hum.cli.fmt"
	local null = conn.null
	local extra = opts["--"]
	if extra and #extra > 0 then
		return die(2, "a hum runs for %s: it runs %s with the command it was started with (no ARGS after --)",
			file, target.name)
	end
	local logc = conn.running(file)
	if not logc then return die(1, "lost the running hum for %s", file) end
	local st, serr = conn.request(logc, { cmd = "status", names = { target.name } }, 30)
	if not st then return die(1, "%s", serr) end
	if not st.ok or not st.procs[1] then
		return die(1, "%s", tostring(null(st.error) or ("no task " .. target.name .. " in the running hum")))
	end
	io.stderr:write(("hum: running %s inside the hum that runs for %s\n"):format(target.name, file))
	raw.client_trap_signals()
	local since = raw.time()
	local ok, err = c:send(cjson.encode({ cmd = "run", task = target.name }) .. "\n")
	if not ok then return die(1, "%s", err) end
	ok, err = logc:send(cjson.encode({ cmd = "logs", names = { target.name }, since = since, n = 1e9,
		follow = true }) .. "\n")
	if not ok then return die(1, "%s", err) end
	local color = fmt.want_color()
	local print_line = require("hum.cli.logs").printer(io.stdout, #target.name, color,
		{ [target.name] = st.procs[1].id })
	local reply, deadline, seen, sig = nil, nil, 0, nil
	while true do
		local s = raw.client_caught_signal()
		if s and sig then
			-- a second one: the stop was asked already; do not wait for it
			io.stderr:write(("hum: %s is being stopped by the running hum\n"):format(target.name))
			return 128 + s
		elseif s then
			sig = s
			local stopc = conn.running(file)
			if stopc then stopc:send(cjson.encode({ cmd = "stop", targets = { target.name } }) .. "\n") end
			io.stderr:write(("hum: stopping %s\n"):format(target.name))
		end
		local line, e = logc:read_line(reply and 0.02 or 0.05)
		if line then
			local okd, l = pcall(cjson.decode, line)
			if okd and type(l) == "table" and l.seq then
				seen = math.max(seen, l.seq)
				print_line(l)
				io.stdout:flush()
			elseif okd and type(l) == "table" and l.dropped then
				io.stderr:write(("hum: %d lines of %s dropped (read too slowly)\n"):format(l.dropped, target.name))
			elseif okd and type(l) == "table" and l.ok == false then
				io.stderr:write("hum: ", tostring(null(l.error)), "\n")
			end
		elseif e == "eof" and not reply then
			return die(1, "connection to the running hum lost")
		end
		if not reply then
			local r, re = c:read_line(0.001)
			if r then
				local okd, v = pcall(cjson.decode, r)
				if not okd or type(v) ~= "table" then return die(1, "bad response from hum: %s", r:sub(1, 200)) end
				reply = v
				deadline = raw.clock() + 5
			elseif re ~= "timeout" then
				return die(1, "connection to the running hum lost")
			end
		end
		if reply then
			local last, first = null(reply.last_seq) or 0, null(reply.start_seq) or 0
			if not reply.ok or seen >= last or last <= first or (e == "eof") or raw.clock() > deadline then break end
		end
	end
	logc:close()
	c:close()
	if not reply.ok then return die(1, "%s", tostring(null(reply.error) or "run failed")) end
	if sig then return 128 + sig end
	local code = task_code(reply.state, null(reply.exit_code))
	if code ~= 0 then
		io.stderr:write(("hum: task %s %s\n"):format(target.name, tostring(null(reply.reason) or reply.state)))
	end
	return code
end

function M.run(opts, pos, cmd)
	local file, err = config.find_and_load(opts.file)
	if not file then return die(1, "%s", err) end
	local define = require "hum.define"
	if opts.list then
		local w = 0
		for _, p in ipairs(define.defs.list) do
			if p.kind == "task" then w = math.max(w, #p.name) end
		end
		for _, p in ipairs(define.defs.list) do
			if p.kind == "task" then print(("%-" .. w .. "s  %s"):format(p.name, p.desc or "")) end
		end
		return 0
	end
	if #pos ~= 1 then return die(2, "expected one task name\n%s", cmd.help) end
	local target = define.defs.byname[pos[1]]
	if not target then return die(2, "no task %q in %s (hum run --list)", pos[1], file) end
	if target.kind ~= "task" then return die(2, "%q is a service, not a task (use hum up)", pos[1]) end
	if target.scale > 1 then return die(2, "%q has scale > 1; hum run runs one copy", pos[1]) end
	local jobs = opts.jobs and tonumber(opts.jobs)
	if opts.jobs then
		local ok, jerr = require("hum.limits").check(jobs or opts.jobs, "jobs", "--jobs")
		if not ok then return die(2, "%s", jerr) end
	end
	-- a hum up of this project is running: the task runs there
	local running = require("hum.cli.conn").running(file)
	if running then return remote(running, file, target, opts) end
	local extra = opts["--"]
	if extra and #extra > 0 then
		if type(target.cmd) == "table" then
			local argv = {}
			for k, a in ipairs(target.cmd) do argv[k] = a end
			for _, a in ipairs(extra) do argv[#argv + 1] = a end
			target.cmd = argv
		else
			local q = {}
			for k, a in ipairs(extra) do q[k] = shell_quote(a) end
			target.cmd = target.cmd .. " " .. table.concat(q, " ")
		end
	end

	local raw = require "hum.raw"
	local runtime = require "hum.runtime"
	-- this run's listeners belong to its generation (rt:listen)
	local rt = runtime.boot(define.base_dir)
	rt.jobs = jobs or raw.ncpu()
	local ti = rt:instances(target)[1]
	rt:want(ti)
	local failed_code
	rt:listen("state", function(i, new, old)
		if new == old or rt:shutting_down() or i.def.kind ~= "task" or not i.wanted then return end
		if i == ti and new == "succeeded" then
			rt:shutdown(failed_code or 0)
		elseif new == "failed" then
			failed_code = failed_code or task_code(new, i.exit_code)
			raw.log(("task %s failed (%s)"):format(i.name, i.reason or "?"))
			if not opts.keep_going or i == ti then rt:shutdown(failed_code) end
		end
	end)
	-- The target can never start: nothing left to wait for (see the top).
	local given_up
	local function tasks_busy()
		for _, i in ipairs(rt.inst_list) do
			if i.wanted and i.def.kind == "task" and i ~= ti
				and (runtime.ACTIVE[i.state] or (i.state == "pending" and rt:gate(i) ~= false)) then
				return true
			end
		end
		return false
	end
	-- The code of the first wanted task that failed: the gate listener may
	-- hear that the target can never start before the state listener heard
	-- of the failure that caused it (gating judges on the state C has
	-- published, which may be ahead of the events: runtime.gate), so this
	-- asks C too.
	local function first_failed()
		for _, i in ipairs(rt.inst_list) do
			local s = i.wanted and i.def.kind == "task" and raw.status(i.id)
			if s and s.state == "failed" then return task_code("failed", s.exit_code) end
		end
	end
	local function give_up()
		if rt:shutting_down() then return end
		if opts.keep_going and tasks_busy() then return end
		raw.log(("hum run: task %s can never start: %s; stopping"):format(ti.name, given_up))
		failed_code = failed_code or first_failed()
		rt:shutdown(failed_code or 1)
	end
	rt:listen("gate", function(i, ok, why)
		if i ~= ti then return end
		given_up = ok == false and why or nil
		if given_up then give_up() end
	end)
	if opts.keep_going then
		rt:listen("state", function() if given_up then give_up() end end)
	end
	-- the target retired (rt:remove): it will never succeed
	rt:listen("removed", function(i)
		if i ~= ti or rt:shutting_down() then return end
		raw.log(("hum run: task %s was removed; stopping"):format(ti.name))
		rt:shutdown(failed_code or 1)
	end)
	-- nothing left that can run (keep-going after a failure): stop services
	rt:listen("idle", function()
		rt:shutdown(failed_code or rt:outcome_code())
		return true
	end)
	rt:evaluate()
	return runtime.run()
end

return M
