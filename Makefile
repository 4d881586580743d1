# The two commands of the README's quick start, and a few more.
.PHONY: demo test build release format clean

# Build and run the demo stack (Ctrl-C stops it). Results land in ./data/results.sqlite.
demo:
	scripts/install-deps.sh
	swift build
	.build/debug/baton up

# Build everything and run every test (unit and integration, with real service processes).
test:
	scripts/install-deps.sh --test
	swift build --build-tests
	swift test --skip-build

build:
	scripts/install-deps.sh
	swift build

release:
	scripts/install-deps.sh
	swift build -c release

format:
	swift format --in-place --recursive Package.swift Shared Services Tests

clean:
	rm -rf .build data
