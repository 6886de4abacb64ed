-- Module lookup (DESIGN §8): package.preload (hum.raw, hum), then files (the
-- project's directory once the config loads, HUM_PATH, $XDG_CONFIG_HOME/hum/lua,
-- the default paths), and only then the modules embedded in hum, so a file
-- can replace a built-in module.
local S = require "support.hum"

-- writes path (creating its directories) under dir
local function put(dir, path, text)
	os.execute("mkdir -p " .. S.q((dir .. "/" .. path):match("^(.*)/")))
	return S.write(dir .. "/" .. path, text)
end

-- an empty XDG directory, so that the user's own files do not count
local function env(t)
	t = t or {}
	t.XDG_CONFIG_HOME = t.XDG_CONFIG_HOME or S.tmpdir()
	return t
end

describe("module lookup", function()
	it("prefers a module beside hum.lua to the embedded one", function()
		local file, dir = S.config('local hum = require "hum"\n'
			.. 'print("fmt: " .. require("hum.cli.fmt").marker)\n'
			.. 'hum.task "t" { cmd = "true" }\n')
		put(dir, "hum/cli/fmt.lua", 'return { marker = "from the project" }\n')
		-- hum.control (the control socket's server side) is loaded by
		-- `hum up` after the config: the project's copy replaces it
		put(dir, "hum/control.lua", [[
local raw = require "hum.raw"
return { start = function() raw.log("the project's control module") return true end }
]])
		local code, out = S.run({ "check", "-f", file }, { cwd = "/", env = env() })
		assert.are.equal(0, code, out)
		assert.matches("fmt: from the project", out, 1, true)
		code, out = S.run({ "up", "-f", file }, { cwd = "/", env = env() })
		assert.are.equal(0, code, out)
		assert.matches("the project's control module", out, 1, true)
		assert.matches("t: exited with code 0", out, 1, true)
	end)

	it("finds modules in HUM_PATH before the embedded ones, even hum's own commands", function()
		local lib = S.tmpdir()
		put(lib, "hum/cli/ps.lua", [[
return { ps = function(opts) print("ps from HUM_PATH, json=" .. tostring(opts.json)) return 0 end }
]])
		-- empty entries and missing directories are skipped
		local code, out = S.run({ "ps", "--json" }, { cwd = "/", env = env { HUM_PATH = "/nonexistent::" .. lib } })
		assert.are.equal(0, code, out)
		assert.matches("ps from HUM_PATH, json=true", out, 1, true)
		-- without it, the built-in ps runs (and finds no hum.lua: exit 3)
		code, out = S.run({ "ps" }, { cwd = "/", env = env() })
		assert.are.equal(3, code, out)
	end)

	it("searches the project, then HUM_PATH, then $XDG_CONFIG_HOME/hum/lua", function()
		local lib, xdg = S.tmpdir(), S.tmpdir()
		local file, dir = S.config([[
local hum = require "hum"
print("a=" .. require "order_a", "b=" .. require "order_b", "c=" .. require "order_c")
assert(hum.service and hum.task, "require 'hum' is the API, not this file")
]])
		put(dir, "order_a.lua", 'return "project"\n')
		put(lib, "order_a.lua", 'return "HUM_PATH"\n')
		put(lib, "order_b.lua", 'return "HUM_PATH"\n')
		put(xdg, "hum/lua/order_b.lua", 'return "XDG"\n')
		put(xdg, "hum/lua/order_c.lua", 'return "XDG"\n')
		-- a hum.lua on the path does not shadow the API either
		put(lib, "hum.lua", 'error("not the API")\n')
		local code, out = S.run({ "check", "-f", file }, { cwd = "/", env = { HUM_PATH = lib, XDG_CONFIG_HOME = xdg } })
		assert.are.equal(0, code, out)
		assert.matches("a=project\tb=HUM_PATH\tc=XDG", out, 1, true)
	end)

	it("names the config's file:line when a module is missing, after every place it looked", function()
		local file = S.config('local hum = require "hum"\n\nrequire "no.such.module"\n')
		local code, out = S.run({ "check", "-f", file }, { cwd = "/", env = env() })
		assert.are.equal(1, code, out)
		assert.matches("hum.lua:3: module 'no.such.module' not found", out, 1, true)
		local files = out:find("no file '", 1, true)
		local embedded = out:find("no module 'no.such.module' embedded in hum", 1, true)
		assert.is_truthy(files and embedded and files < embedded, out)
	end)
end)

-- hum.cli keeps one entry per command: the usage list, `hum CMD --help`,
-- `hum --help CMD` and dispatch all come from it.
describe("the command table", function()
	local names = { "up", "run", "check", "ps", "status", "logs", "start", "stop", "restart", "signal", "down", "eval" }

	it("gives each command one help text, however it is asked for", function()
		local code, usage = S.run({ "--help" }, { cwd = "/" })
		assert.are.equal(0, code, usage)
		for _, name in ipairs(names) do
			assert.is_truthy(usage:find("\n  " .. name, 1, true) or usage:find("|" .. name, 1, true), name)
			local c1, a = S.run({ name, "--help" }, { cwd = "/" })
			local c2, b = S.run({ "--help", name }, { cwd = "/" })
			local c3, c = S.run({ "help", name }, { cwd = "/" })
			assert.are.same({ 0, 0, 0 }, { c1, c2, c3 }, name)
			assert.matches("^usage: hum " .. name, a)
			assert.are.equal(a, b, name)
			assert.are.equal(a, c, name)
		end
	end)

	it("prints the command's help after a usage error, with exit 2", function()
		for _, name in ipairs(names) do
			local code, out = S.run({ name, "--no-such-option" }, { cwd = "/" })
			assert.are.equal(2, code, out)
			assert.matches("^hum: unknown option %-%-no%-such%-option\nusage: hum " .. name, out)
		end
		local code, out = S.run({ "frobnicate" }, { cwd = "/" })
		assert.are.equal(2, code, out)
		assert.matches('unknown command "frobnicate"', out, 1, true)
	end)
end)
