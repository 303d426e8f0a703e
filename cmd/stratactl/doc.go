// Command stratactl is the Strata command-line tool: the operator's client
// of the pageserver ManagementService (design D8) and the bridge's
// BridgeService, a local stack of the four services (init, start, stop,
// status, logs; the work is in internal/localstack), fullbackup and boot,
// plus offline helpers such as "token" (key pairs and JWTs for development
// and tests). User guide: docs/cli.md.
//
// Layout: main.go only wires (build the root command, execute, exit);
// root.go owns the command tree, --output (text|json), printOutput and the
// exit-code contract (0 ok, 1 runtime error, 2 usage error, 3 not found);
// client.go resolves addresses and tokens and maps gRPC errors to messages
// that say what to do next; each command
// lives in its own file with a newXxxCmd constructor, added to the tree by
// one line in newRootCmd.
//
// Secrets (tokens) are read from stdin or files, never from arguments
// (design D5). The CLI holds no global mutable state apart from the version
// and commit strings set by the linker.
package main
