// Package osuser owns the unprivileged OS users Strata runs PostgreSQL
// binaries as when it runs as root (PostgreSQL refuses to run as root): it
// looks a system user up, creates it with useradd if missing, and describes
// how to start a child process as it.
//
// Creation is serialized machine-wide with flock on one lock file
// (os.TempDir()/strata-useradd.lock): concurrent `useradd` runs are not
// safe — measured here, eight parallel `useradd --system` of one name all
// "succeeded" with two different uids and one passwd write was lost — and
// the test packages, the walredo children and the local stack may all
// create users at once.
//
// When not root, Ensure returns the current user and nothing switches
// identity. Safe for concurrent use.
package osuser
