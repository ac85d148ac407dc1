package main

import (
	"encoding/json"
	"fmt"

	"github.com/agenthelm/agenthelm/internal/buildinfo"
	"github.com/spf13/cobra"
)

func newVersionCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "version",
		Short:   "Print the version of this binary",
		Example: "  agenthelm version\n  agenthelm version --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			info := buildinfo.Get()
			if asJSON {
				enc := json.NewEncoder(g.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(info)
			}
			rev := ""
			if info.Revision != "" {
				rev = " (" + info.Revision[:min(12, len(info.Revision))] + ")"
			}
			_, err := fmt.Fprintf(g.stdout, "agenthelm %s%s %s %s\n", info.Version, rev, info.GoVersion, info.Platform)
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	return cmd
}
