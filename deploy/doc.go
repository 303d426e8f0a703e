// Package deploy holds no product code: it is the nested module (own go.mod,
// so k8s.io/client-go stays out of the product's module) whose tests check
// the deployment artifacts offline, since no container engine or cluster
// runs in CI:
//
//   - the Kubernetes manifests (kustomization.yaml, k8s/*.yaml, and the
//     output of `kubectl kustomize` when kubectl is installed) decode
//     strictly into the client-go types (unknown or mistyped fields fail),
//     and hang together: probes, ports, volumes, Services, config files;
//   - docker/Dockerfile: stages, COPY sources, build paths and the targets
//     the compose file builds;
//   - compose.yaml: its services, targets, config mounts and health checks
//     (`docker-compose config -q` validates its schema when installed);
//   - config/*.toml: listen ports agree with the manifests and compose.
//
// Whether each TOML file is accepted by its service is checked in the main
// module (cmd/strata-configdoc), which can import the services.
//
// Run: `cd deploy && go test ./...` (make deploy-check).
package deploy
