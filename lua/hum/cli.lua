-- hum.cli — the command line: the command table, option parsing, dispatch.
--
-- Every command is one entry of COMMANDS (as tmux's cmd_entry): its name, the
-- lines it shows in `hum --help`, its options, its help text and the module
-- that runs it.  `hum --help`, `hum CMD --help`, `hum --help CMD`, option
-- parsing and dispatch all read that table; a command's module is loaded
-- only when the command runs, and its function, named like the command, is
-- called as fn(opts, positional, entry).
--
-- Exit codes: 0 ok, 1 operation failed, 2 usage error, 3 no running instance.
local M = {}

local function control_help(verb, what)
	return ([[
usage: hum %s [-f FILE] NAME|GROUP|GLOB...

%s  Waits until it is done and prints each process's new state.

  -f, --file FILE   config whose hum to ask (default: hum.lua here or in a parent)

Exit status: 0, 1 when nothing matches or a process failed, 3 when no hum
is running.]]):format(verb, what)
end

-- Entry fields:
--   name      the command word; aliases: other words for it
--   synopsis  { { left, right }... }: its lines in `hum --help`
--   client    talks to a running `hum up`: listed under its own heading
--   options   "f|file=" is -f or --file with a value, stored as opts.file;
--             "k|keep-going" a flag stored as opts.keep_going (the longest
--             spelling names it); -h/--help is added to every command
--   help      the text of `hum CMD --help` (also printed after a usage error)
--   module    the module whose function `name` runs it (or run = fn(args)
--             for the entries that take no options)
--   short     lives a few milliseconds: the JIT is turned off, compiling
--             traces would cost it more than it saves (hum ps --json: ~1 ms
--             of ~8 ms CPU); up, run and logs keep it: they run long or stream
local FILE = "f|file="
local COMMANDS = {
	{ name = "up", module = "hum.cli.up", options = { FILE, "d|detach" },
		synopsis = {
			{ "up [-f FILE] [NAME|GROUP...]", "start processes in the foreground (merged logs)" },
			{ "up -d", "the same in the background (output: .hum/hum.log)" },
		},
		help = [[
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
1 when something failed, 128+N when stopped by signal N while running.]] },

	{ name = "run", module = "hum.cli.run", options = { FILE, "j|jobs=", "k|keep-going", "l|list" },
		synopsis = {
			{ "run [-f FILE] TASK [-- ARGS]", "run a task and its dependencies; exit with its code" },
			{ "run --list", "list tasks with their descriptions" },
		},
		help = [[
usage: hum run [-f FILE] [-j N] [--keep-going] TASK [-- ARGS...]
       hum run [-f FILE] --list

Runs TASK after its dependencies (tasks and services), in parallel where the
graph allows.  ARGS after -- are appended to TASK's command.

  -f, --file FILE     config file (default: hum.lua here or in a parent)
  -j, --jobs N        at most N tasks at once (default: number of cores)
  -k, --keep-going    after a failure, still run every task that does not
                      depend on the failed one
  -l, --list          list tasks with their descriptions

Exit status: the failing task's exit code (1 if it was killed or could not
start), 0 when TASK succeeded, 2 for usage errors.]] },

	{ name = "check", module = "hum.cli.check", options = { FILE }, short = true,
		synopsis = { { "check [-f FILE]", "validate the config and print the dependency graph" } },
		help = [[
usage: hum check [-f FILE]

Loads the config, reports the first error as file:line: message (exit 1), or
prints every process with its dependencies (exit 0).]] },

	{ name = "version", aliases = { "--version", "-V" }, short = true,
		synopsis = { { "--version", "print the version" } },
		run = function()
			print("hum " .. require("hum").version .. " (" .. jit.version .. ")")
			return 0
		end },

	{ name = "help", aliases = { "--help", "-h" }, short = true,
		synopsis = { { "--help, hum CMD --help", "this text, or a command's" } },
		run = function(args)
			local cmd = args[1] and M.find(args[1])
			print(cmd and cmd.help or M.usage())
			return 0
		end },

	{ name = "ps", module = "hum.cli.ps", client = true, short = true, options = { FILE, "json", "w|watch" },
		synopsis = { { "ps [--json] [--watch]", "every process: state, pid, uptime, restarts, exit" } },
		help = [[
usage: hum ps [-f FILE] [--json] [--watch]

Lists the processes of the running hum: NAME, STATE, PID, UPTIME, RESTARTS,
EXIT (code or signal of the last run), GROUP and the reason for the state.

  -f, --file FILE   config whose hum to ask (default: hum.lua here or in a parent)
      --json        one JSON array of objects, stable keys in this order: name,
                    id, kind, state, pid, restarts, exit_code, signal,
                    started_at, ended_at, changed_at, group, groups, ready,
                    reason, lines, bytes, dropped, first_seq, last_seq,
                    generation (times: seconds since the epoch; null if none)
  -w, --watch       then one line per change (time, name, state, pid, reason)
                    until hum stops; with --json the server's change feed
                    (the `watch` request), one JSON object per line

Exit status: 0, 1 on error, 3 when no hum is running for this project.]] },

	{ name = "status", module = "hum.cli.ps", client = true, short = true, options = { FILE, "json" },
		synopsis = { { "status NAME...", "one process (or group, glob, replicas) in detail" } },
		help = [[
usage: hum status [-f FILE] [--json] NAME...

Shows one process in detail (NAME may also be a group, a glob or the base
name of replicas: web matches web.1, web.2).

  -f, --file FILE   config whose hum to ask
      --json        a JSON array with one object per selected process (the
                    same keys as hum ps --json), also when only one matches

Exit status: 0, 1 when nothing matches, 3 when no hum is running.]] },

	-- in `hum logs`, -f is --follow (as in tail -f); the config is --file
	{ name = "logs", module = "hum.cli.logs", client = true,
		options = { "file=", "f|F|follow", "n|lines=", "g|grep=", "s|since=", "stream=", "json" },
		synopsis = { { "logs [NAME...] [-f] [-n N]", "recent output, merged; -f follows new lines" } },
		help = [[
usage: hum logs [--file FILE] [NAME...] [-f|--follow] [-n N] [--grep RE]
                [--since T] [--stream out|err] [--json]

Prints the processes' recent output from hum's in-memory log rings, merged
in the order it was produced, as "HH:MM:SS name | line" (stderr lines are
marked with "!").  NAME may be a process, a group, a glob or the base name
of replicas; default: every process.

  -f, --follow      (also -F) keep printing new lines until the processes are
                    removed or hum stops
  -n, --lines N     the last N lines (default 100; 0 with --follow: only new)
  -g, --grep RE     only lines matching the PCRE2 (Perl) regular expression
                    RE (plain text is matched as a substring)
  -s, --since T     only lines since T: a duration ago (30s, 10m, 2h, 1d),
                    a time today (14:05, 14:05:30), a date and time
                    (2024-05-01T14:05:00) or seconds since the epoch
      --stream S    only stdout (out) or stderr (err)
      --json        one JSON object per line: {"seq","time","name","stream",
                    "line"} ("cont":true when a long line continues in the
                    next); seq orders lines across processes, time is seconds
                    since the epoch
      --file FILE   config whose hum to ask (default: hum.lua here or in a
                    parent); there is no short form: in `hum logs`, -f means
                    --follow (as in tail -f), not --file as in other commands

Exit status: 0, 1 on error (nothing matches NAME, bad RE), 3 when no hum
is running.]] },

	{ name = "start", module = "hum.cli.control", client = true, short = true, options = { FILE },
		synopsis = { { "start|stop|restart NAME...", "control processes, groups or globs" } },
		help = control_help("start", "Starts the processes (and what they depend on) unless they run.") },

	{ name = "stop", module = "hum.cli.control", client = true, short = true, options = { FILE },
		help = control_help("stop", "Stops the processes (stop signal, then SIGKILL after the grace period);\nthey stay stopped until started again.  hum itself keeps running.") },

	{ name = "restart", module = "hum.cli.control", client = true, short = true, options = { FILE },
		help = control_help("restart", "Stops the processes and starts them again.") },

	{ name = "signal", module = "hum.cli.control", client = true, short = true, options = { FILE },
		synopsis = { { "signal SIG NAME...", "send a signal to processes' groups" } },
		help = [[
usage: hum signal [-f FILE] SIG NAME|GROUP|GLOB...

Sends signal SIG (HUP, USR1, TERM, 9, SIGINT...) to each process's group.

  -f, --file FILE   config whose hum to ask

Exit status: 0, 1 when a process is not running or nothing matches, 3 when
no hum is running.]] },

	{ name = "down", module = "hum.cli.control", client = true, short = true, options = { FILE },
		synopsis = { { "down", "stop everything and end that hum" } },
		help = [[
usage: hum down [-f FILE]

Stops every process in reverse dependency order and ends the running hum;
returns once hum has exited (its socket closes).

  -f, --file FILE   config whose hum to stop

Exit status: 0, 1 on error, 3 when no hum is running.]] },

	{ name = "eval", module = "hum.cli.control", client = true, short = true, options = { FILE },
		synopsis = { { "eval 'lua code'", "run Lua inside it and print the result" } },
		help = [[
usage: hum eval [-f FILE] 'lua code'

Runs the code in the running hum's Lua state (as a reaction: hum.sleep and
hum.wait work; `hum` is the API) and prints what it printed, then the
values it returned.  An expression is returned as is: hum eval 'hum.ps()'.
Globals it sets persist between evals.

  -f, --file FILE   config whose hum to ask

Exit status: 0, 1 when the code failed (the error and traceback go to
stderr), 3 when no hum is running.]] },
}
M.commands = COMMANDS

-- The entry for a command word (its name or an alias), or nil.
function M.find(word)
	for _, cmd in ipairs(COMMANDS) do
		if cmd.name == word then return cmd end
		for _, a in ipairs(cmd.aliases or {}) do
			if a == word then return cmd end
		end
	end
end

-- `hum --help`: every entry's synopsis, the client commands under a heading.
function M.usage()
	local local_lines, client_lines = {}, {}
	for _, cmd in ipairs(COMMANDS) do
		local lines = cmd.client and client_lines or local_lines
		for _, s in ipairs(cmd.synopsis or {}) do
			lines[#lines + 1] = ("  %-30s %s"):format(s[1], s[2])
		end
	end
	return table.concat({
		"usage: hum <command> [options]\n",
		table.concat(local_lines, "\n"),
		"\nTalking to a running `hum up` (over .hum/hum.sock; exit 3 if none runs):",
		table.concat(client_lines, "\n"),
		"\nThe config is hum.lua in the current directory or a parent, or -f FILE.",
	}, "\n")
end

function M.die(code, fmt, ...)
	io.stderr:write("hum: ", fmt:format(...), "\n")
	return code
end
local die = M.die

-- An entry's option strings -> the parser's table: { [spelling] = { name, arg } }.
local function option_spec(cmd)
	if cmd.option_spec then return cmd.option_spec end
	local spec = { h = { name = "help" }, help = { name = "help" } }
	for _, o in ipairs(cmd.options or {}) do
		local arg = o:sub(-1) == "="
		local names, longest = {}, ""
		for n in (arg and o:sub(1, -2) or o):gmatch("[^|]+") do
			names[#names + 1] = n
			if #n > #longest then longest = n end
		end
		local s = { name = longest:gsub("%-", "_"), arg = arg }
		for _, n in ipairs(names) do spec[n] = s end
	end
	cmd.option_spec = spec
	return spec
end

-- Parses "-f FILE", "--file FILE", "--file=FILE" and flags, up to "--"
-- (what follows goes to opts["--"]); returns opts, positional, or nil, error.
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
		if not name then
			-- a short option's value may be attached, as getopt allows: -j4, -n50
			local c, rest = a:match("^%-(%w)(.+)$")
			if c and spec[c] and spec[c].arg then name, val = c, rest end
		end
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

function M.main(args)
	local word = args[1]
	local cmd = word and M.find(word)
	if not cmd or cmd.short then jit.off() end
	if word == nil then
		print(M.usage())
		return 2
	end
	if not cmd then return die(2, "unknown command %q (see hum --help)", word) end
	local rest = {}
	for k = 2, #args do rest[#rest + 1] = args[k] end
	if cmd.run then return cmd.run(rest) end
	local opts, pos = parse(rest, option_spec(cmd))
	if not opts then return die(2, "%s\n%s", pos, cmd.help) end
	if opts.help then print(cmd.help) return 0 end
	return require(cmd.module)[cmd.name](opts, pos, cmd)
end

return M
