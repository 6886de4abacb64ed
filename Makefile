# hum — build, test, bench.  `make test` and `make run` are all a new user needs.
#
# Layout of outputs: build/ (normal), build/asan/ (ASan+UBSan), build/tsan/.
# Each folder of core/ is one static library (state, sup, api), linked in the
# order api -> sup -> state, so a call against the data path's direction
# (state/ into sup/ or api/, sup/ into api/) does not link.  Every
# core/tests/*.c is a test program; every bench/*.c a benchmark (a benchmark
# with a folder of its own, bench/NAME/, also links the C files there);
# lua/main.c, lua/bind/*.c and the embedded Lua modules (lua/hum/**/*.lua,
# compiled to LuaJIT bytecode with line info) make `hum`.

DEPS      := libluajit2-5.1-dev luajit2 libev-dev libck-dev libjansson-dev libpcre2-dev lua-busted lua-cjson
B         ?= build
CC        ?= cc
SANFLAGS  ?=
OPT       ?= -O2
CFLAGS    ?= $(OPT) -g
CFLAGS    += -std=gnu11 -Wall -Wextra -Wno-unused-parameter -Wshadow -D_GNU_SOURCE \
             -Icore -I/usr/include/luajit-2.1 -pthread $(SANFLAGS)
LDLIBS    := -lluajit-5.1 -lev -lck -ljansson -lpcre2-8 -lpthread -lm -ldl
LUAJIT    ?= luajit

CORE_DIRS := api sup state
CORE_LIBS := $(CORE_DIRS:%=$(B)/libhum%.a)
LUA_CSRC  := lua/main.c $(wildcard lua/bind/*.c)
LUA_COBJ  := $(LUA_CSRC:%.c=$(B)/%.o)
LUA_MODS  := $(wildcard lua/hum/*.lua lua/hum/*/*.lua)
LUA_MOBJ  := $(LUA_MODS:%.lua=$(B)/%.luao)
TEST_SRC  := $(wildcard core/tests/*.c)
TEST_BIN  := $(TEST_SRC:core/tests/%.c=$(B)/tests/%)
BENCH_SRC := $(wildcard bench/*.c)
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(B)/bench/%)
FIX_SRC   := $(wildcard spec/fixtures/*.c)
FIX_BIN   := $(FIX_SRC:spec/fixtures/%.c=$(B)/fixtures/%)
HDRS      := $(wildcard core/*/*.h lua/bind/*.h)

.PHONY: all test deps run bench check-asan check-tsan clean spec ctest ctest-asan ctest-tsan fuzz
all: $(B)/hum $(TEST_BIN) $(BENCH_BIN) $(FIX_BIN)

# One library per core folder: $(B)/libhumstate.a from core/state/*.c, ...
# (objs_of is a variable so that its % is not the pattern rule's stem.)
objs_of = $(patsubst %.c,$(B)/%.o,$(wildcard core/$(1)/*.c))
.SECONDEXPANSION:
$(B)/libhum%.a: $$(call objs_of,$$*)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

$(B)/%.o: %.c $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -c $< -o $@

# Lua modules become objects exporting luaJIT_BC_<name>: lua/hum/cli/ps.lua is
# the module "hum.cli.ps" and the symbol luaJIT_BC_hum_cli_ps.  -g keeps line
# numbers for tracebacks.
$(B)/lua/hum/%.luao: lua/hum/%.lua
	@mkdir -p $(@D)
	$(LUAJIT) -b -g -n hum.$(subst /,.,$*) $< $@.o && mv $@.o $@

$(B)/hum: $(LUA_COBJ) $(LUA_MOBJ) $(CORE_LIBS)
	$(CC) $(CFLAGS) -Wl,-E -o $@ $(LUA_COBJ) $(LUA_MOBJ) $(CORE_LIBS) $(LDLIBS)

# Tests named *_alloc_test get every allocation routed through
# core/tests/failalloc.h (an allocation-failure harness).
WRAP_ALLOC := -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=aligned_alloc,--wrap=free
$(B)/tests/%: core/tests/%.c $(CORE_LIBS) $(HDRS) core/tests/failalloc.h
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -o $@ $< $(CORE_LIBS) $(LDLIBS) $(if $(filter %_alloc_test,$*),$(WRAP_ALLOC))

$(B)/bench/%: bench/%.c $$(wildcard bench/$$*/*.c bench/$$*/*.h) $(CORE_LIBS) $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -o $@ $< $(wildcard bench/$*/*.c) $(CORE_LIBS) $(LDLIBS)

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

# The C unit and stress tests alone under each sanitizer: fast and
# deterministic, so CI runs them on every submission (.ci/run).
ASAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
TSAN_FLAGS := -fsanitize=thread -fno-omit-frame-pointer -DHUM_TSAN=1
ctest-asan: deps
	@$(MAKE) --no-print-directory B=build/asan OPT=-O1 SANFLAGS="$(ASAN_FLAGS)" \
	  $(TEST_SRC:core/tests/%.c=build/asan/tests/%) $(FIX_SRC:spec/fixtures/%.c=build/asan/fixtures/%)
	@B=build/asan HUM_SAN=asan ONLY=ctest sh spec/run.sh

ctest-tsan: deps
	@$(MAKE) --no-print-directory B=build/tsan OPT=-O1 SANFLAGS="$(TSAN_FLAGS)" \
	  $(TEST_SRC:core/tests/%.c=build/tsan/tests/%) $(FIX_SRC:spec/fixtures/%.c=build/tsan/fixtures/%)
	@B=build/tsan HUM_SAN=tsan ONLY=ctest sh spec/run.sh

check-asan: deps
	@$(MAKE) --no-print-directory all B=build/asan OPT=-O1 SANFLAGS="$(ASAN_FLAGS)"
	@B=build/asan HUM_SAN=asan sh spec/run.sh

check-tsan: deps
	@$(MAKE) --no-print-directory all B=build/tsan OPT=-O1 SANFLAGS="$(TSAN_FLAGS)"
	@B=build/tsan HUM_SAN=tsan sh spec/run.sh

# not part of `make test`: core/fuzz/*_fuzz.c with clang, ASan and UBSan into
# build/fuzz/, run for FUZZ_SECONDS on the seed corpus (core/fuzz/corpus/,
# read only) plus what it found before (build/fuzz/corpus/); crashes, leaks
# and slow inputs land in build/fuzz/crashes/.
FUZZ_SECONDS ?= 60
FUZZ_B       := build/fuzz
FUZZ_DEPS    := clang libclang-rt-14-dev
FUZZ_SAN     := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
fuzz:
	@sh spec/deps.sh $(DEPS) $(FUZZ_DEPS)
	@$(MAKE) --no-print-directory $(CORE_DIRS:%=$(FUZZ_B)/libhum%.a) B=$(FUZZ_B) CC=clang OPT=-O1 \
	  SANFLAGS="-fsanitize=fuzzer-no-link $(FUZZ_SAN)"
	clang $(CFLAGS) -O1 -fsanitize=fuzzer $(FUZZ_SAN) \
	  -o $(FUZZ_B)/request_fuzz core/fuzz/request_fuzz.c $(CORE_DIRS:%=$(FUZZ_B)/libhum%.a) $(LDLIBS)
	@mkdir -p $(FUZZ_B)/corpus $(FUZZ_B)/crashes
	$(FUZZ_B)/request_fuzz -max_total_time=$(FUZZ_SECONDS) -max_len=16384 -timeout=5 \
	  -dict=core/fuzz/request.dict -artifact_prefix=$(FUZZ_B)/crashes/ -print_final_stats=1 \
	  $(FUZZ_B)/corpus core/fuzz/corpus


.PHONY: all test deps run bench check-asan check-tsan clean spec ctest ctest-asan ctest-tsan fuzz

clean:
	rm -rf build
