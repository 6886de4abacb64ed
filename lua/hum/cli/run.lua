-- hum.cli.run — `hum run TASK`: run a task and its dependency graph.
--
-- Every task in the graph runs once, as soon as its dependencies allow, with
-- at most `jobs` tasks running at a time (default: the number of cores).
-- Services the graph needs are started and stopped around it.  The first
-- failure stops the run (unless --keep-going) and hum exits with that
-- task's exit code; when the target succeeds, services stop and hum exits 0.
local config = require "hum.config"
local die = require("hum.cli").die

local M = {}

local function shell_quote(s)
	if s:match("^[%w%-%./_=:,@]+$") then return s end
	return "'" .. s:gsub("'", "'\\''") .. "'"
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
	local jobs = opts.jobs and tonumber(opts.jobs)
	if opts.jobs then
		local ok, jerr = require("hum.limits").check(jobs or opts.jobs, "jobs", "--jobs")
		if not ok then return die(2, "%s", jerr) end
	end

	local raw = require "hum.raw"
	local runtime = require "hum.runtime"
	runtime.boot(define.base_dir)
	runtime.mode = "run"
	runtime.jobs = jobs or raw.ncpu()
	local ti = runtime.instances(target)[1]
	runtime.want(ti)
	local failed_code
	runtime.listen("state", function(i, new, old)
		if new == old or runtime.shutting_down() or i.def.kind ~= "task" or not i.wanted then return end
		if i == ti and new == "succeeded" then
			runtime.shutdown(failed_code or 0)
		elseif new == "failed" then
			local code = (i.exit_code and i.exit_code > 0) and i.exit_code or 1
			failed_code = failed_code or code
			raw.log(("task %s failed (%s)"):format(i.name, i.reason or "?"))
			if not opts.keep_going or i == ti then runtime.shutdown(failed_code) end
		end
	end)
	-- nothing left that can run (keep-going after a failure): stop services
	runtime.listen("idle", function()
		runtime.shutdown(failed_code or runtime.outcome_code())
		return true
	end)
	runtime.evaluate()
	return runtime.run()
end

return M
