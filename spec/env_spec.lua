-- The environment of a child: hum.env, env files, per-process env and
-- unset, HUM_PROCESS and HUM_REPLICA, and env_clear.
local S = require "support.hum"
local run = require "support.scenario".run

local scenario = S.scenario
local marker = S.marker
local lines = S.file_lines

describe("environment", function()
	it("merges hum.env, env files and per-process env, with unset", function()
		local dir = S.tmpdir()
		S.write(dir .. "/.env", [[
# comment
export A=1
B="two words"
C='single $A'
D=${A}-x  # trailing comment
E="line\nbreak"
]])
		local file, _, results = scenario([[
hum.env_file ".env"
hum.env { G = "global", H = "gone" }
local t = hum.task "t" { cmd = "echo \"$A|$B|$C|$D|$G|${H-unset}|$P|$HUM_PROCESS\"", env = { P = 5, H = false } }
t:on("line", ".", function(ev) rec(ev.line) end)
]], dir)
		local code, out = S.run({ "up", "-f", file })
		assert.are.equal(0, code, out)
		assert.matches("1|two words|single %$A|1%-x|global|unset|5|t", S.read(results))
	end)

	it("runs replicas with HUM_REPLICA set", function()
		local code, out, r = run [[
local w = hum.task "w" { cmd = "echo replica=$HUM_REPLICA name=$HUM_PROCESS", scale = 3 }
w:on("line", "replica=(%d) name=(%S+)", function(ev, n, name) rec("r", n, name, ev.name) end)
]]
		assert.are.equal(0, code, out)
		for n = 1, 3 do assert.matches(("r %d w.%d w.%d"):format(n, n, n), r) end
	end)

	it("env_clear gives the child only hum's variables, hum.env and its own env", function()
		local mark = marker("ENVCLEAR")
		local file, _, results = scenario [[
hum.env { FROM_HUM_ENV = "shared" }
local c = hum.task "clear" { cmd = { "env" }, env_clear = true, env = { FROM_PROC = "mine", NUM = 7 } }
local k = hum.task "kept" { cmd = { "env" }, env = { FROM_PROC = "kept" } }
for _, p in ipairs { c, k } do
	p:on("line", ".", function(ev) rec(ev.name, ev.line) end)
end
]]
		local code, out = S.run({ "up", "-f", file }, { env = { INHERIT_ME = mark, HOME = "/root/humspec" } })
		assert.are.equal(0, code, out)
		local clear, kept = {}, {}
		for _, l in ipairs(lines(results)) do
			local who, k, v = l:match("^(%a+) ([^=]+)=(.*)$")
			if who == "clear" then clear[k] = v elseif who == "kept" then kept[k] = v end
		end
		local keys = {}
		for k in pairs(clear) do keys[#keys + 1] = k end
		table.sort(keys)
		assert.are.same({ "FROM_HUM_ENV", "FROM_PROC", "HUM_PROCESS", "HUM_TOKEN", "NUM" }, keys)
		assert.are.equal("shared", clear.FROM_HUM_ENV)
		assert.are.equal("mine", clear.FROM_PROC)
		assert.are.equal("7", clear.NUM)
		assert.are.equal("clear", clear.HUM_PROCESS)
		assert.is_truthy(clear.HUM_TOKEN ~= "")
		-- without env_clear the same hum's environment is inherited
		assert.are.equal(mark, kept.INHERIT_ME)
		assert.are.equal("/root/humspec", kept.HOME)
		assert.are.equal("shared", kept.FROM_HUM_ENV)
		assert.are.equal("kept", kept.FROM_PROC)
		assert.are.equal("kept", kept.HUM_PROCESS)
	end)
end)
