// Package demotest holds the automated check that `make demo` passes: it
// runs the target from the repository root exactly as a user would and
// checks the script's verdict and the side-by-side table in its output.
//
// The test takes about a minute on an idle 2-core machine (packages already
// installed, binaries already built) and starts real PostgreSQL servers and
// the four services, so it runs only when STRATA_DEMO_TEST=1:
//
//	STRATA_DEMO_TEST=1 go test -count=1 -v ./scripts/demotest/
//
// It owns nothing at run time: scripts/demo.sh creates and removes its own
// temporary directory and processes.
package demotest
