module github.com/agenthelm/agenthelm

go 1.26.0
