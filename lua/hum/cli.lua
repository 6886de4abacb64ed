-- hum.cli — the command line: parses arguments and runs a command.
-- Exit codes: 0 ok, 1 operation failed, 2 usage error, 3 no running instance.
local M = {}

package.preload.hum = function() return require "hum.api" end

local USAGE = [[
usage: hum <command> [options]

  up [-f FILE] [NAME|GROUP...]   start processes in the foreground (merged logs)
  up -d                          the same in the background (output: .hum/hum.log)
  run [-f FILE] TASK [-- ARGS]   run a task and its dependencies; exit with its code
  run --list                     list tasks with their descriptions
  check [-f FILE]                validate the config and print the dependency graph
  --version                      print the version
  --help, hum CMD --help         this text, or a command's

Talking to a running `hum up` (over .hum/hum.sock; exit 3 if none runs):
  ps [--json]                    every process: state, pid, uptime, restarts, exit
  status NAME...                 one process (or group, glob, replicas) in detail
  logs [NAME...] [-f] [-n N]     recent output, merged; -f follows new lines
  start|stop|restart NAME...     control processes, groups or globs
  signal SIG NAME...             send a signal to processes' groups
  down                           stop everything and end that hum
  eval 'lua code'                run Lua inside it and print the result

The config is hum.lua in the current directory or a parent, or -f FILE.]]

local HELP = {
	up = [[
usage: hum up [-f FILE] [NAME|GROUP|GLOB...]

Starts the named processes (default: every process not marked autostart=false)
and their dependencies, prints their output as "HH:MM:SS name | line", and
stays in the foreground.  Ctrl-C (or SIGTERM/SIGHUP) stops everything in
reverse dependency order; a second Ctrl-C kills every process group at once.

  -f, --file FILE   config file (default: hum.lua here or in a parent)
  -d, --detach      run in the background: returns once it listens on its
                    control socket; output goes to .hum/hum.log next to the
                    config (hum ps, hum logs, hum down talk to it)

Exit status: 0 when every task succeeded and services were stopped by request,
1 when something failed, 128+N when stopped by signal N while running.]],
	check = [[
usage: hum check [-f FILE]

Loads the config, reports the first error as file:line: message (exit 1), or
prints every process with its dependencies (exit 0).]],
}

local function die(code, fmt, ...)
	io.stderr:write("hum: ", fmt:format(...), "\n")
	return code
end

-- Parses "-f FILE" style options; returns opts, positional, or nil, error.
local function parse(args, spec)
	local opts, pos = {}, {}
	local k = 1
	while k <= #args do
		local a = args[k]
		if a == "--" then
			opts["--"] = {}
			for j = k + 1, #args do opts["--"][#opts["--"] + 1] = args[j] end
			break
		end
		local name, val = a:match("^%-%-([%w%-]+)=(.*)$")
		name = name or a:match("^%-%-([%w%-]+)$") or a:match("^%-(%w)$")
		if name then
			local s = spec[name]
			if not s then return nil, ("unknown option %s"):format(a) end
			if s.arg then
				if val == nil then
					k = k + 1
					val = args[k]
					if val == nil then return nil, ("option %s needs a value"):format(a) end
				end
				opts[s.name] = val
			else
				opts[s.name] = true
			end
		else
			pos[#pos + 1] = a
		end
		k = k + 1
	end
	return opts, pos
end

local FILE_OPTS = {
	f = { name = "file", arg = true }, file = { name = "file", arg = true },
	h = { name = "help" }, help = { name = "help" },
}

-- `hum up -d` (hum.server.detach): the same options plus --detach.
local UP_OPTS = setmetatable({ d = { name = "detach" }, detach = { name = "detach" } }, { __index = FILE_OPTS })

local function load_config(opts)
	local config = require "hum.config"
	local file = opts.file or config.find()
	if not file then return nil, "no hum.lua here or in a parent directory (use -f FILE)" end
	local ok, err = config.load(file)
	if not ok then return nil, err end
	return file
end
M.load_config = load_config

function M.up(args)
	local opts, pos = parse(args, UP_OPTS)
	if not opts then return die(2, "%s\n%s", pos, HELP.up) end
	if opts.help then print(HELP.up) return 0 end
	local file, err = load_config(opts)
	if not file then return die(1, "%s", err) end
	local raw = require "hum.raw"
	local runtime = require "hum.runtime"
	local define = require "hum.define"
	local selected = {}
	for _, name in ipairs(pos) do
		local list = runtime.select_defs(name)
		if #list == 0 then return die(2, "nothing matches %q in %s", name, file) end
		for _, p in ipairs(list) do selected[#selected + 1] = p end
	end
	if #pos == 0 then
		for _, p in ipairs(define.defs.list) do
			if p.autostart then selected[#selected + 1] = p end
		end
	end
	if opts.detach then
		-- the original process returns once the background hum listens
		-- (or failed); the background one goes on from here
		local code = require("hum.server").detach(file)
		if code then return code end
	end
	runtime.boot(define.base_dir)
	for _, p in ipairs(selected) do
		for _, i in ipairs(p.instances) do runtime.want(i) end
	end
	if #selected == 0 then
		raw.log("nothing to start")
		return 0
	end
	-- the control socket (hum.server) answers `hum ps`, `hum logs`, ... from
	-- other terminals; it refuses to start if another instance runs here
	local ok, server = pcall(require, "hum.server")
	if ok then
		local started, serr = server.start(file, opts)
		if not started then
			return die(1, "%s", serr)
		end
	elseif not tostring(server):find("module 'hum.server' not found", 1, true) then
		error(server, 0)
	end
	runtime.evaluate()
	return raw.run()
end

function M.check(args)
	local opts, pos = parse(args, FILE_OPTS)
	if not opts then return die(2, "%s\n%s", pos, HELP.check) end
	if opts.help then print(HELP.check) return 0 end
	local file, err = load_config(opts)
	if not file then return die(1, "%s", err) end
	local define = require "hum.define"
	print(("%s: %d processes, %d groups"):format(file, #define.defs.list, #define.defs.group_list))
	for _, p in ipairs(define.defs.list) do
		local deps = {}
		for _, d in ipairs(p.after) do deps[#deps + 1] = ("%s (%s)"):format(d.name, d.cond) end
		print(("  %-8s %s%s%s"):format(p.kind, p.name, p.scale > 1 and (" x" .. p.scale) or "",
			#deps > 0 and ("  after " .. table.concat(deps, ", ")) or ""))
	end
	for _, g in ipairs(define.defs.group_list) do
		local names = {}
		for _, m in ipairs(g.members) do names[#names + 1] = m.name end
		print(("  group    %s: %s"):format(g.name, table.concat(names, ", ")))
	end
	return 0
end

local COMMANDS = { up = M.up, check = M.check }

function M.register(name, fn, help)
	COMMANDS[name] = fn
	if help then HELP[name] = help end
end
M.HELP, M.parse, M.die = HELP, parse, die

-- Commands that live a few milliseconds: compiling traces costs them more
-- than it saves (hum ps --json: ~1 ms of ~8 ms CPU).  up, run and logs keep
-- the JIT: they run long or stream.
local SHORT = { ps = true, status = true, start = true, stop = true, restart = true, signal = true,
	down = true, eval = true, check = true }

function M.main(args)
	local cmd = args[1]
	if cmd == nil or SHORT[cmd] or cmd:sub(1, 1) == "-" or cmd == "help" or cmd == "version" then jit.off() end
	if cmd == nil or cmd == "--help" or cmd == "-h" or cmd == "help" then
		if args[2] and HELP[args[2]] then print(HELP[args[2]]) return 0 end
		print(USAGE)
		return cmd == nil and 2 or 0
	end
	if cmd == "--version" or cmd == "-V" or cmd == "version" then
		print("hum " .. require("hum.api").version .. " (" .. jit.version .. ")")
		return 0
	end
	-- commands defined in other modules register themselves when loaded
	for _, m in ipairs { "hum.tasks", "hum.client" } do
		local ok, err = pcall(require, m)
		if not ok and not tostring(err):find("module '" .. m .. "' not found", 1, true) then error(err, 0) end
	end
	local fn = COMMANDS[cmd]
	if not fn then return die(2, "unknown command %q (see hum --help)", cmd) end
	local rest = {}
	for k = 2, #args do rest[#rest + 1] = args[k] end
	return fn(rest)
end

return M
