-- Values are validated where they enter: every number of a definition and
-- of a timer (finite, in range, whole where a count), the helpers of a
-- reaction (an error, never a wait for ever), `scale` and the names its
-- replicas take, `hum run -j`, and programs not found (a warning).
local S = require "support.hum"
local run = require "support.scenario".run

-- `hum check` of a config whose lines from 2 on are `lines`: exit code, output.
local function check(lines)
	local file = S.config('local hum = require "hum"\n' .. lines .. "\n")
	return S.run({ "check", "-f", file })
end

local function svc(fields) return ('hum.service "x" { cmd = "true", %s }'):format(fields) end

describe("numbers in a definition", function()
	local bad = {
		{ svc "stop = { grace = 0/0 }", "stop.grace must be seconds from 0 to 31536000 %(365 days%), not NaN" },
		{ svc "stop = { grace = math.huge }", "stop.grace must be .-, not math.huge" },
		{ svc "stop = { grace = -1 }", "stop.grace must be .-, not %-1" },
		{ svc "restart = { policy = 'always', max = 0/0 }", "restart.max must be a whole number from 0 to 1000000, or %-1 for no limit, not NaN" },
		{ svc "restart = { policy = 'always', max = math.huge }", "restart.max must be .-, not math.huge" },
		{ svc "restart = { policy = 'always', max = -math.huge }", "restart.max must be .-, not %-math.huge" },
		{ svc "restart = { policy = 'always', max = -2 }", "restart.max must be" },
		{ svc "restart = { policy = 'always', max = 2.5 }", "restart.max must be .-, not 2.5" },
		{ svc "restart = { policy = 'always', backoff = 0/0 }", "restart.backoff must be" },
		{ svc "restart = { policy = 'always', backoff = { 0/0, 30 } }", "restart.backoff initial must be" },
		{ svc "restart = { policy = 'always', backoff = { 1, 0/0 } }", "restart.backoff cap must be" },
		{ svc "restart = { policy = 'always', backoff = { 1, math.huge } }", "restart.backoff cap must be" },
		{ svc "restart = { policy = 'always', backoff = { 5, 1 } }", "restart.backoff needs initial <= cap" },
		{ svc "restart = { policy = 'always', reset = 0/0 }", "restart.reset must be" },
		{ svc "restart = { policy = 'always', reset = math.huge }", "restart.reset must be" },
		{ svc "restart = { policy = 'always', reset = -1 }", "restart.reset must be .-, not %-1" },
		{ svc "ready = hum.ready.tcp(8080, { interval = 0/0 })", "probe option interval must be seconds from 0.001" },
		{ svc "ready = hum.ready.tcp(8080, { interval = 0 })", "probe option interval must be .-, not 0" },
		{ svc "ready = hum.ready.tcp(8080, { interval = math.huge })", "probe option interval must be" },
		{ svc "ready = hum.ready.tcp(8080, { timeout = 0/0 })", "probe option timeout must be" },
		{ svc "ready = hum.ready.tcp(8080, { timeout = -1 })", "probe option timeout must be" },
		{ svc "ready = hum.ready.tcp(8080, { retries = math.huge })", "probe option retries must be a whole number from 1 to 1000000" },
		{ svc "ready = hum.ready.tcp(8080, { retries = 1.5 })", "probe option retries must be" },
		{ svc "ready = hum.ready.tcp(8080, { period = 0/0 })", "probe option period must be" },
		{ svc "ready = hum.ready.line('up', { timeout = 0/0 })", "probe option timeout must be" },
		{ svc "ready = hum.ready.http('http://127.0.0.1:8080/', { interval = 0/0 })", "probe option interval must be" },
		{ svc "liveness = hum.ready.exec('true', { retries = 0/0 })", "probe option retries must be" },
		{ svc "ready = hum.ready.tcp(0/0)", "hum.ready.tcp: port must be a whole number from 1 to 65535, not NaN" },
		{ svc "ready = hum.ready.tcp(80.5)", "hum.ready.tcp: port must be" },
		{ svc "ready = hum.ready.tcp(65536)", "hum.ready.tcp: port must be" },
		{ svc "ready = hum.ready.http('http://127.0.0.1:0/')", "hum.ready.http: bad port" },
		{ svc "scale = 0/0", 'hum.service "x": scale must be a whole number from 1 to 1000, not NaN' },
		{ svc "scale = math.huge", 'hum.service "x": scale must be .-, not math.huge' },
		{ svc "scale = 1e9", 'hum.service "x": scale must be .-, not 1000000000' },
		{ svc "scale = 1001", 'hum.service "x": scale must be' },
		{ svc "scale = 0", 'hum.service "x": scale must be' },
		{ svc "scale = 2.5", 'hum.service "x": scale must be' },
		{ "hum.after(0/0, function() end)", "hum.after: the delay must be seconds from 0 to 31536000 %(365 days%), not NaN" },
		{ "hum.after(-1, function() end)", "hum.after: the delay must be" },
		{ "hum.every(0/0, function() end)", "hum.every: the interval must be seconds from 0.001" },
		{ "hum.every(0, function() end)", "hum.every: the interval must be" },
		{ "hum.every(math.huge, function() end)", "hum.every: the interval must be" },
	}
	for _, c in ipairs(bad) do
		it("rejects " .. c[1], function()
			local code, out = check(c[1])
			assert.are.equal(1, code, out)
			assert.matches("hum%.lua:2: " .. c[2], out)
		end)
	end

	it("accepts every number in range, and -1 (or nothing) for unlimited restarts", function()
		local file = S.config [[
local hum = require "hum"
hum.service "a" { cmd = "true", stop = { grace = 0 }, restart = { policy = "always", max = -1, backoff = { 0, 0 }, reset = 0 } }
hum.service "b" { cmd = "true", stop = { grace = 31536000 }, restart = { policy = "always", max = 1000000, backoff = 2, reset = 31536000 } }
hum.service "c" { cmd = "true", restart = "always", scale = 1000, ready = hum.ready.tcp(65535, { interval = 0.001, timeout = 0, retries = 1 }) }
hum.service "d" { cmd = "true", ready = hum.ready.http("http://127.0.0.1:1/"), liveness = hum.ready.exec("true", { period = 31536000, retries = 1000000 }) }
hum.after(0, function() end)
hum.every(0.001, function() end)
]]
		local code, out = S.run({ "check", "-f", file })
		assert.are.equal(0, code, out)
		assert.matches("service%s+c x1000", out)
	end)
end)

describe("numbers given to the helpers of a reaction", function()
	it("raise an error at the call instead of waiting for ever", function()
		local code, out, r = run [[
local t = hum.task "t" { cmd = "true" }
local calls = {
	{ "sleep nan", function() hum.sleep(0/0) end },
	{ "sleep -1", function() hum.sleep(-1) end },
	{ "sleep inf", function() hum.sleep(math.huge) end },
	{ "wait nan", function() hum.wait(t, "exit", 0/0) end },
	{ "wait -1", function() hum.wait(t, "exit", -1) end },
	{ "exec nan", function() hum.exec({ "sleep", "100" }, { timeout = 0/0 }) end },
	{ "exec -1", function() hum.exec({ "sleep", "100" }, { timeout = -1 }) end },
	{ "exec 0", function() hum.exec({ "sleep", "100" }, { timeout = 0 }) end },
	{ "after nan", function() hum.after(0/0, function() end) end },
	{ "every 0", function() hum.every(0, function() end) end },
}
t:on("exit", function()
	for _, c in ipairs(calls) do
		local ok, err = pcall(c[2])
		rec(c[1], ok, (tostring(err):gsub("\n.*", "")))
	end
	hum.shutdown(0)
end)
]]
		assert.are.equal(0, code, out)
		for _, what in ipairs { "sleep nan", "sleep %-1", "sleep inf" } do
			assert.matches(what .. " false [^\n]*hum%.lua:%d+: hum%.sleep: the delay must be seconds", r)
		end
		assert.matches("wait nan false [^\n]*hum%.wait: the timeout must be seconds from 0 to 31536000 %(365 days%), not NaN", r)
		assert.matches("wait %-1 false [^\n]*hum%.wait: the timeout must be", r)
		assert.matches("exec nan false [^\n]*hum%.exec: the timeout must be seconds from 0%.001", r)
		assert.matches("exec %-1 false [^\n]*hum%.exec: the timeout must be", r)
		assert.matches("exec 0 false [^\n]*hum%.exec: the timeout must be", r)
		assert.matches("after nan false [^\n]*hum%.after: the delay must be", r)
		assert.matches("every 0 false [^\n]*hum%.every: the interval must be", r)
	end)
end)

describe("scale and replica names", function()
	local cases = {
		{ "a service named like a later replica",
			'hum.service "web.2" { cmd = "true" }\nhum.service "web" { cmd = "true", scale = 2 }',
			':3: hum%.service "web" %(scale = 2%), replica 2: name "web%.2" is taken by service "web%.2", defined at [^\n]*hum%.lua:2' },
		{ "a service named like an earlier replica",
			'hum.service "web" { cmd = "true", scale = 2 }\nhum.task "web.2" { cmd = "true" }',
			':3: hum%.task "web%.2": name "web%.2" is taken by replica 2 of "web" %(scale = 2%), defined at [^\n]*hum%.lua:2' },
		{ "a group named like a replica",
			'hum.service "web" { cmd = "true", scale = 2 }\nhum.group "web.2" { "web" }',
			':3: hum%.group "web%.2": name "web%.2" is taken by replica 2 of "web" %(scale = 2%)' },
		{ "a replica named like a group",
			'hum.group "web.1" { }\nhum.service "web" { cmd = "true", scale = 3 }',
			':3: hum%.service "web" %(scale = 3%), replica 1: name "web%.1" is taken by group "web%.1"' },
		{ "a group joined by the field group, named like a replica",
			'hum.service "web" { cmd = "true", scale = 2 }\nhum.service "x" { cmd = "true", group = "web.1" }',
			':3: hum%.group "web%.1": name "web%.1" is taken by replica 1 of "web"' },
		{ "a process named like a group",
			'hum.group "g" { }\nhum.service "g" { cmd = "true" }',
			':3: hum%.service "g": name "g" is taken by group "g"' },
		{ "a group named like a process",
			'hum.service "g" { cmd = "true" }\nhum.group "g" { }',
			':3: hum%.group "g": name "g" is taken by service "g"' },
		{ "a scaled definition named like another's replica",
			'hum.service "a" { cmd = "true", scale = 2 }\nhum.service "a.1" { cmd = "true", scale = 2 }',
			':3: hum%.service "a%.1": name "a%.1" is taken by replica 1 of "a"' },
	}
	for _, c in ipairs(cases) do
		it("rejects " .. c[1] .. " at the second definition", function()
			local code, out = check(c[2])
			assert.are.equal(1, code, out)
			assert.matches("hum%.lua" .. c[3], out)
		end)
	end

	it("keeps the message of a plain duplicate, and allows a group to be extended", function()
		local code, out = check('hum.service "a" { cmd = "true", group = "g" }\nhum.service "b" { cmd = "true", group = "g" }\nhum.group "g" { "a" }\nhum.service "web" { cmd = "true", scale = 2 }\nhum.service "web.3" { cmd = "true" }')
		assert.are.equal(0, code, out)
		assert.matches("group%s+g: a, b", out)
		code, out = check('hum.service "a" { cmd = "true" }\nhum.service "a" { cmd = "true" }')
		assert.are.equal(1, code, out)
		assert.matches('hum%.lua:3: duplicate name "a" %(first defined at [^\n]*hum%.lua:2%)', out)
	end)
end)

describe("hum run -j", function()
	it("takes a whole number from 1 to 1000", function()
		local file = S.config('local hum = require "hum"\nhum.task "t" { cmd = "true" }\n')
		for _, j in ipairs { "inf", "nan", "0", "2.5", "1001", "many" } do
			local code, out = S.run({ "run", "-f", file, "-j", j, "t" })
			assert.are.equal(2, code, j .. ": " .. out)
			assert.matches("%-%-jobs must be a whole number from 1 to 1000", out)
		end
		local code, out = S.run({ "run", "-f", file, "-j", "3", "t" })
		assert.are.equal(0, code, out)
		-- attached, as getopt allows; the same rule for what is attached
		code, out = S.run({ "run", "-f", file, "-j1", "t" })
		assert.are.equal(0, code, out)
		code, out = S.run({ "run", "-f", file, "-j0", "t" })
		assert.are.equal(2, code, out)
		assert.matches("%-%-jobs must be a whole number from 1 to 1000, not 0", out)
		code, out = S.run({ "run", "-f", file, "-k1", "t" }) -- -k takes no value: a usage error
		assert.are.equal(2, code, out)
	end)
end)

describe("programs that are not found", function()
	it("are warnings of hum check, naming the definition's line", function()
		local dir = S.tmpdir()
		os.execute("mkdir -p " .. S.q(dir .. "/bin"))
		S.write(dir .. "/bin/tool", "#!/bin/sh\n")
		S.write(dir .. "/bin/plain", "not executable\n")
		os.execute("chmod +x " .. S.q(dir .. "/bin/tool"))
		local file = S.config([[
local hum = require "hum"
hum.service "a" { cmd = { "hum-spec-no-such-program" } }
hum.service "b" { cmd = "exec hum-spec-no-such-either --flag" }
hum.service "c" { cmd = { "./bin/plain" } }
hum.service "d" { cmd = { "./bin/tool" } }
hum.service "e" { cmd = "tool", env = { PATH = "bin:/usr/bin:/bin" } }
hum.service "f" { cmd = "tool", cwd = "bin", env = { PATH = "" } }
hum.service "g" { cmd = "FOO=1 whatever; cd x && y" }
hum.service "h" { cmd = { "sh", "-c", "exit 0" } }
]], dir)
		local code, out = S.run({ "check", "-f", file })
		assert.are.equal(0, code, out)
		assert.matches('hum%.lua:2: warning: hum%.service "a": "hum%-spec%-no%-such%-program" is not on PATH', out)
		assert.matches('hum%.lua:3: warning: hum%.service "b": "hum%-spec%-no%-such%-either" is not on PATH', out)
		assert.matches('hum%.lua:4: warning: hum%.service "c": "%./bin/plain" is not an executable file', out)
		assert.are.equal(3, S.count(out, "warning:"), out)
	end)
end)
