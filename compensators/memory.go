package compensators

import "github.com/agenthelm/agenthelm/saga"

// memoryPre reads the graph that open_nodes captured before the step.
const memoryPre = `def pre:
  if .capture == null then error("no capture was recorded for this step")
  elif .capture.isError == true then error("the capture call failed: \(.capture.content[0].text? // "no message")")
  else (.capture.structuredContent // .capture_json // error("the capture holds no graph")) end;
`

// memoryPack covers @modelcontextprotocol/server-memory (2026.8.31). The
// server skips entities and relations that already exist and observations
// an entity already has, and says in its result which it added; the
// deletions report nothing. So creations are undone from a capture
// (entities) or the result (relations, observations), and deletions are
// undone from a capture of the nodes they touch, taken with open_nodes.
func memoryPack() map[string]Rule {
	return map[string]Rule{
		"read_graph":   readOnly,
		"search_nodes": readOnly,
		"open_nodes":   readOnly,

		// Delete only the names that were not entities before the call.
		"create_entities": {
			Capture: &Capture{Tool: "open_nodes", Args: `{names: ([.args.entities[]? | .name? | strings] | unique)}`},
			Compensate: compensate("delete_entities", memoryPre+
				`{entityNames: (([.args.entities[]? | .name? | strings] | unique) - [pre | .entities[]? | .name])}`),
		},
		// The result lists the relations the call added.
		"create_relations": {
			Compensate: compensate("delete_relations",
				`{relations: [(.result.structuredContent.relations // .result_json // error("the result lists no relations")) | .[]? | {from, to, relationType}]}`),
		},
		// The result lists, per entity, the observations actually added.
		"add_observations": {
			Compensate: compensate("delete_observations",
				`{deletions: [(.result.structuredContent.results // .result_json // error("the result lists no added observations")) | .[]?
				  | select((.addedObservations | length) > 0) | {entityName, observations: .addedObservations}]}`),
		},
		// Re-create the entities with their observations, then the
		// relations that went with them.
		"delete_entities": {
			Idempotent: true,
			Capture:    &Capture{Tool: "open_nodes", Args: `{names: [.args.entityNames[]? | strings]}`},
			Compensate: compensate("create_entities", memoryPre+`{entities: [pre | .entities[]? | {name, entityType, observations}]}`,
				saga.Call{Tool: "create_relations", Args: memoryPre + `{relations: [pre | .relations[]? | {from, to, relationType}]}`}),
		},
		// Re-add the observations that the entity had and the call named,
		// as often as the entity had them. The server deletes from the
		// first entity of a name only, and ignores names that are not
		// entities.
		"delete_observations": {
			Idempotent: true,
			Capture:    &Capture{Tool: "open_nodes", Args: `{names: ([.args.deletions[]? | .entityName? | strings] | unique)}`},
			Compensate: compensate("add_observations", memoryPre+
				`(reduce (.args.deletions[]? | objects | select(.entityName | type == "string")) as $d
				   ({}; .[$d.entityName] += [$d.observations[]? | strings])) as $del
				| (pre | reduce .entities[]? as $e ({}; if has($e.name) then . else .[$e.name] = $e end)) as $before
				| {observations: [$before[] | .name as $n
				    | {entityName: $n, contents: [.observations[]? | select(IN($del[$n][]?))]}
				    | select(.contents | length > 0)]}`),
		},
		// Re-create the relations that existed and the call named.
		"delete_relations": {
			Idempotent: true,
			Capture:    &Capture{Tool: "open_nodes", Args: `{names: ([.args.relations[]? | (.from?, .to?) | strings] | unique)}`},
			Compensate: compensate("create_relations", memoryPre+
				`[.args.relations[]? | objects | {from, to, relationType}] as $gone
				| {relations: [pre | .relations[]? | {from, to, relationType} | select(IN($gone[]))]}`),
		},
	}
}
