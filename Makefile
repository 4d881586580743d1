# The two commands of the README's quick start, and a few more.
.PHONY: demo test lint bench build release format clean chaos fuzz compose-test

# Build and run the demo stack (Ctrl-C stops it). Results land in ./data/results.sqlite.
demo:
	scripts/install-deps.sh
	swift build
	.build/debug/baton up

# Build everything and run every test: the unit tests first, on their own (in-process, with time limits that hold
# only while no service stack competes for the two cores: beside the integration tests, tests of 0.1 s waited over
# a minute for a thread), then the integration tests (real service processes). The chaos suites
# and the fuzz suite load both cores for a minute each, so they run on their own after the rest; then the compose
# stack is run for real in Docker (compose-test below, which needs root).
CHAOS_SUITES = ChaosTests|ChaosHarnessTests|FuzzTests
# Suites that run several whole stacks, hosts or attackers at once (each serialized inside): a phase of their own,
# so that the many short tests of the first phase keep their time limits on two cores.
HOST_SUITES = IntegrationTests.AttackTests|HostsTests|TestHostsTests|PostgresOutageTests|CurveDeploymentTests
# Suites that keep a core busy for many seconds at a stretch (thousands of generated cases, or processes racing to
# open one store): run apart, after the short tests, since a test holding one of the two cooperative threads that
# long pushes the timing-sensitive ones past their limits.
CPU_SUITES = ConfigurationPropertyTests|WorkRequestsTests|JSONLinesTests|SQLiteStoreStartTests
test:
	scripts/install-deps.sh --test
	$(MAKE) lint
	swift build --build-tests
	swift test --skip-build --skip 'IntegrationTests|$(CPU_SUITES)'
	swift test --skip-build --filter IntegrationTests --skip '$(CHAOS_SUITES)|$(HOST_SUITES)'
	swift test --skip-build --filter '$(CPU_SUITES)'
	swift test --skip-build --filter '$(HOST_SUITES)'
	swift test --skip-build --filter '$(CHAOS_SUITES)'
	$(MAKE) compose-test


# The style check CI runs: swift-format (part of the toolchain) with the repository's .swift-format, every finding
# an error (`make format` fixes most of them in place).
lint:
	swift format lint --strict --recursive --parallel Package.swift Shared Services Tests Benchmarks

# The benchmark suite (docs/PERFORMANCE.md): a static release build, then every measurement with its
# raw libzmq / SQLite baseline; prints a table and writes bench.json. The build takes 10-20 minutes from a clean
# clone on two cores, the suite about 25 (half of it the scale curves; docs/PERFORMANCE.md, "The command").
bench:
	scripts/install-deps.sh --static
	swift build -c release --static-swift-stdlib
	.build/release/baton-bench --output bench.json

# The black-box chaos harness (scripts/chaos.py): SIGKILLs and SIGSTOPs services for DURATION seconds while a
# job fires every 150 ms (and a pipelined one every 2 s), then checks every slot was stored exactly once, byte for
# byte, every pipelined run's merged row, and `baton audit`.
DURATION ?= 300
chaos:
	scripts/install-deps.sh
	swift build
	python3 scripts/chaos.py --duration $(DURATION)

# The black-box fuzz suite (scripts/fuzz.py, needs pyzmq): MESSAGES malformed messages and two 100 MiB frames on
# every socket a service binds, garbage, 100 KiB lines, idle and slow-loris connections on every HTTP port, while
# a job fires every 200 ms; then checks that every service stayed up and within +64 MiB of RSS, /healthz answered,
# every slot was stored exactly once, message.rejected was published, and the bus carried only well-formed events.
MESSAGES ?= 10000
fuzz:
	scripts/install-deps.sh --test
	swift build
	python3 scripts/fuzz.py --messages $(MESSAGES) --duration 60

# The compose stack run for real (scripts/compose-test.sh): its own dockerd, a base image debootstrapped from apt's
# mirror (cached in ~/.cache/baton-compose), images from the debug build, `up --scale processor=3`, kill -9 of a
# processor and the algorithm, every slot stored exactly once, `down -v`. Needs root (dockerd, debootstrap).
# Measured on 2 busy cores: 7 minutes the first time (debootstrap 4 of them), 2.5 with the base image cached.
compose-test:
	scripts/compose-test.sh

build:
	scripts/install-deps.sh
	swift build

release:
	scripts/install-deps.sh
	swift build -c release

format:
	swift format --in-place --recursive Package.swift Shared Services Tests Benchmarks

clean:
	rm -rf .build data .bench bench.json
