-- spec/support/cli.lua — the hum client commands as a spec reads them.
-- `require "support.cli"` gives C with
--   C.ps(dir, file)       `hum ps --json` run in dir: name -> process object,
--                         or nil when no hum answers
--   C.json_lines(out)     one decoded JSON value per line of out
--   C.run_tty(args, opts) the hum CLI on a pseudo-terminal (util-linux
--                         `script`): exit code, output with \r\n made \n
--   C.has_script()        whether `script` is there to make that terminal
local S = require "support.hum"
local cjson = require "cjson"

local C = {}

-- `hum ps --json` run in dir: name -> process object, or nil when no hum answers
function C.ps(dir, file)
	local args = { "ps", "--json" }
	if file then args[#args + 1] = "-f" args[#args + 1] = file end
	local code, out = S.run(args, { cwd = dir })
	if code ~= 0 then return nil end
	local by = {}
	for _, p in ipairs(cjson.decode(out)) do by[p.name] = p end
	return by
end

function C.json_lines(out)
	local t = {}
	for l in out:gmatch("[^\n]+") do t[#t + 1] = cjson.decode(l) end
	return t
end

-- Runs the hum CLI on a pseudo-terminal (stdout and stderr are the pty):
-- exit code, output (with the terminal's \r\n turned back into \n).
function C.run_tty(args, opts)
	local cmd = { S.q(S.HUM) }
	for _, a in ipairs(args) do cmd[#cmd + 1] = S.q(a) end
	local env = { "env", "-u", "NO_COLOR", "TERM=xterm" }
	for k, v in pairs(opts.env or {}) do env[#env + 1] = k .. "=" .. S.q(v) end
	local line = ("cd %s && %s timeout -k 5 60 script -qec %s /dev/null </dev/null 2>&1; echo \"__EXIT:$?\"")
		:format(S.q(opts.cwd), table.concat(env, " "), S.q(table.concat(cmd, " ")))
	local p = io.popen(line)
	local out = p:read("*a")
	p:close()
	local code = tonumber(out:match("__EXIT:(%d+)%s*$"))
	return code, (out:gsub("__EXIT:%d+%s*$", ""):gsub("\r\n", "\n"))
end

function C.has_script()
	local r = os.execute("command -v script >/dev/null 2>&1")
	return r == 0 or r == true
end

return C
