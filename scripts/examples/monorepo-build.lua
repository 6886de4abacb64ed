-- A monorepo build DAG for `hum run`: independent packages build in
-- parallel, dependents wait, and `hum run all` exits with the first failing
-- step's code.  Try: hum run -f scripts/examples/monorepo-build.lua all
--                    hum run -f scripts/examples/monorepo-build.lua --list
local hum = require "hum"

local function step(name, seconds, deps, desc)
	return hum.task(name) {
		desc = desc,
		cmd = ("echo 'building %s'; sleep %s; echo '%s done'"):format(name, seconds, name),
		after = deps,
	}
end

step("codegen", 0.3, nil, "generate protocol stubs")
step("lib-core", 0.6, { "codegen" }, "core library")
step("lib-ui", 0.5, { "codegen" }, "UI components")
step("app-server", 0.4, { "lib-core" }, "server binary")
step("app-web", 0.7, { "lib-core", "lib-ui" }, "web bundle")
step("test", 0.5, { "app-server", "app-web" }, "unit tests")
hum.task "all" { desc = "build and test everything", cmd = "echo 'all green'", after = { "test" } }
