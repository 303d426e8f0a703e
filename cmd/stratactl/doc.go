// Command stratactl is the Strata command-line tool: the operator's client
// of the pageserver ManagementService (design D8), plus offline helpers such
// as "token" (key pairs and JWTs for development and tests).
//
// Layout: main.go only wires (build the root command, execute, exit);
// root.go owns the command tree, --output (text|json), printOutput and the
// exit-code contract (0 ok, 1 runtime error, 2 usage error); each command
// lives in its own file with a newXxxCmd constructor, added to the tree by
// one line in newRootCmd.
//
// Secrets (tokens) are read from stdin or files, never from arguments
// (design D5). The CLI holds no global mutable state apart from the version
// and commit strings set by the linker.
package main
