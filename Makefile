# hum — build, test, bench.  `make test` and `make run` are all a new user needs.
#
# Layout of outputs: build/ (normal), build/asan/ (ASan+UBSan), build/tsan/.
# Every C file in core/ goes into libhumcore.a; every core/tests/*.c is a test
# program; every bench/*.c a benchmark; lua/*.c plus the embedded Lua modules
# (lua/hum/*.lua, compiled to LuaJIT bytecode with line info) make `hum`.

DEPS      := libluajit2-5.1-dev luajit2 libev-dev libck-dev lua-busted lua-cjson
B         ?= build
CC        ?= cc
SANFLAGS  ?=
OPT       ?= -O2
CFLAGS    ?= $(OPT) -g
CFLAGS    += -std=gnu11 -Wall -Wextra -Wno-unused-parameter -Wshadow -D_GNU_SOURCE \
             -Icore -I/usr/include/luajit-2.1 -pthread $(SANFLAGS)
LDLIBS    := -lluajit-5.1 -lev -lck -lpthread -lm -ldl
LUAJIT    ?= luajit

CORE_SRC  := $(wildcard core/*.c)
CORE_OBJ  := $(CORE_SRC:%.c=$(B)/%.o)
LUA_CSRC  := $(wildcard lua/*.c)
LUA_COBJ  := $(LUA_CSRC:%.c=$(B)/%.o)
LUA_MODS  := $(wildcard lua/hum/*.lua)
LUA_MOBJ  := $(LUA_MODS:%.lua=$(B)/%.luao)
TEST_SRC  := $(wildcard core/tests/*.c)
TEST_BIN  := $(TEST_SRC:core/tests/%.c=$(B)/tests/%)
BENCH_SRC := $(wildcard bench/*.c)
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(B)/bench/%)
FIX_SRC   := $(wildcard spec/fixtures/*.c)
FIX_BIN   := $(FIX_SRC:spec/fixtures/%.c=$(B)/fixtures/%)
HDRS      := $(wildcard core/*.h lua/*.h)

.PHONY: all test deps run bench check-asan check-tsan clean spec ctest
all: $(B)/hum $(TEST_BIN) $(BENCH_BIN) $(FIX_BIN)

$(B)/libhumcore.a: $(CORE_OBJ)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

$(B)/%.o: %.c $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -c $< -o $@

# Lua modules become objects exporting luaJIT_BC_<name>; lua/embed.c lists them
# in package.preload.  -g keeps line numbers for tracebacks.  The module name
# "hum.foo" gives the symbol luaJIT_BC_hum_foo.
$(B)/lua/hum/%.luao: lua/hum/%.lua
	@mkdir -p $(@D)
	$(LUAJIT) -b -g -n hum.$* $< $@.o && mv $@.o $@

$(B)/hum: $(LUA_COBJ) $(LUA_MOBJ) $(B)/libhumcore.a
	$(CC) $(CFLAGS) -Wl,-E -o $@ $(LUA_COBJ) $(LUA_MOBJ) $(B)/libhumcore.a $(LDLIBS)

$(B)/tests/%: core/tests/%.c $(B)/libhumcore.a $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -o $@ $< $(B)/libhumcore.a $(LDLIBS)

$(B)/bench/%: bench/%.c $(B)/libhumcore.a $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -o $@ $< $(B)/libhumcore.a $(LDLIBS)

$(B)/fixtures/%: spec/fixtures/%.c
	@mkdir -p $(@D)
	$(CC) -O2 -g -Wall -D_GNU_SOURCE -o $@ $<

# Installs what is missing when root; otherwise prints the exact command.
deps:
	@sh spec/deps.sh $(DEPS)

test: deps
	@$(MAKE) --no-print-directory all
	@B=$(B) sh spec/run.sh

ctest spec: all
	@B=$(B) ONLY=$@ sh spec/run.sh

run: deps
	@$(MAKE) --no-print-directory $(B)/hum
	$(B)/hum up -f scripts/demo.lua

bench: deps
	@$(MAKE) --no-print-directory all
	@B=$(B) sh bench/run.sh

check-asan: deps
	@$(MAKE) --no-print-directory all B=build/asan OPT=-O1 \
	  SANFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
	@B=build/asan HUM_SAN=asan sh spec/run.sh

check-tsan: deps
	@$(MAKE) --no-print-directory all B=build/tsan OPT=-O1 \
	  SANFLAGS="-fsanitize=thread -fno-omit-frame-pointer -DHUM_TSAN=1"
	@B=build/tsan HUM_SAN=tsan sh spec/run.sh

clean:
	rm -rf build
