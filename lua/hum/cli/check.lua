-- hum.cli.check — `hum check`: loads the config and prints every process
-- with its dependencies, or the first error as file:line: message.  A
-- program that is not found (not on the PATH the process will get, or a
-- path that is not an executable file) is a warning, not an error: it may
-- be installed or built before it runs (a task earlier in the graph).
local config = require "hum.config"
local util = require "hum.util"
local die = require("hum.cli").die

local M = {}

-- Words that start a shell command without naming a program.
local SHELL_WORDS = {}
for w in ([[! { ( if then else elif fi for while until do done case esac function
	. : [ alias bg break cd command continue echo eval exit export false fg getopts
	hash jobs kill let local printf pwd read readonly return set shift source test
	times trap true type ulimit umask unalias unset wait]]):gmatch("%S+") do
	SHELL_WORDS[w] = true
end

local WORD = "[%w_%-%./+@,:]+"

-- The program a command runs, when it can be told without a shell: argv[1],
-- or the first word of a simple shell command (after `exec`); nil for
-- anything else (an assignment, a quote, an expansion, a shell keyword).
function M.program(cmd)
	if type(cmd) == "table" then return tostring(cmd[1]) end
	local w, rest = cmd:match("^%s*(" .. WORD .. ")(.*)$")
	if w == "exec" then w, rest = rest:match("^%s+(" .. WORD .. ")(.*)$") end
	if not w or SHELL_WORDS[w] or w:sub(1, 1) == "-" then return nil end
	if rest ~= "" and not rest:match("^[%s;&|)]") then return nil end
	return w
end

-- The PATH process p gets (hum.runtime.register's build_env: hum's environment
-- unless env_clear, then hum.env and env files, then p.env; false unsets),
-- or the default of execvp.
local function path_of(p, defs)
	local v = p.env.PATH
	if v == nil then
		for j = #defs.env, 1, -1 do
			if defs.env[j][1] == "PATH" then v = defs.env[j][2] break end
		end
	end
	if v == nil and not p.env_clear then v = os.getenv("PATH") end
	if not v then return "/bin:/usr/bin" end
	return tostring(v)
end

-- Whether prog is found as the launcher (core/sup/launch.c) looks it up:
-- with a slash, relative to the process's directory; without, on its PATH,
-- relative entries (and an empty one) from the process's directory.
local function found(prog, path, dir)
	if prog:find("/", 1, true) then return util.executable(util.resolve(dir, prog)) end
	for entry in (path .. ":"):gmatch("([^:]*):") do
		if util.executable(util.resolve(util.resolve(dir, entry == "" and "." or entry), prog)) then return true end
	end
	return false
end

-- Warnings about programs that are not found, as "file:line: warning: ...".
function M.warnings(defs, base_dir)
	local out, seen = {}, {} -- a config of 10,000 `sleep`s looks sleep up once
	for _, p in ipairs(defs.list) do
		local prog = M.program(p.cmd)
		local dir = util.resolve(base_dir, p.cwd or ".")
		local key = prog and table.concat({ prog, path_of(p, defs), dir }, "\0")
		if key and seen[key] == nil then seen[key] = found(prog, path_of(p, defs), dir) end
		if key and not seen[key] then
			out[#out + 1] = ("%s: warning: hum.%s %q: %s"):format(p.where, p.kind, p.name,
				prog:find("/", 1, true) and ("%q is not an executable file"):format(prog)
				or ("%q is not on PATH"):format(prog))
		end
	end
	return out
end

function M.check(opts)
	local file, err = config.find_and_load(opts.file)
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
	for _, w in ipairs(M.warnings(define.defs, define.base_dir)) do
		io.stderr:write("hum: ", w, "\n")
	end
	return 0
end

return M
