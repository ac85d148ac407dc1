// Package deploy holds what runs agenthelm beside its observability stack:
// docker-compose.yml at the repository root and the files it mounts
// (agenthelm/, prometheus/, grafana/), Jaeger's loopback configuration and
// build script (jaeger/), and native/, which runs the same topology as
// local processes where no Docker engine runs. README.md says how to use
// each.
//
// It has no Go code. Its tests check the compose file, the configurations
// and the Grafana provisioning without Docker; e2e/ (build tag jaeger) runs
// the topology with a real Jaeger.
package deploy
