// Package config loads and checks agenthelm.yaml: defaults first, then a
// strict decode of the file over them (unknown keys are errors), then the
// AGENTHELM_* environment overrides, then Validate, which reports every
// problem at once as "file:line: field.path: problem" and compiles every jq
// expression so that later packages run programs instead of re-parsing text.
//
// It imports nothing from the rest of agenthelm. Secrets never enter the
// Config: "${VAR}" references in upstream env and headers are expanded only
// when a connection is made (Upstream.ResolvedEnv, Upstream.ResolvedHeaders).
//
//	cfg, err := config.Load("agenthelm.yaml")
//	if err != nil {
//		return err // every problem, one per line
//	}
//	for _, w := range cfg.Warnings() {
//		logger.Warn("config", "warning", w)
//	}
//	env, err := cfg.Upstreams["memory"].ResolvedEnv()
package config
