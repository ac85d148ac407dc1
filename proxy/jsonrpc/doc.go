// Package jsonrpc reads and writes JSON-RPC 2.0 frames at the envelope level.
//
// It exists so that the proxy can look at the few fields it routes on (id,
// method, whether a frame is a response) while keeping every frame's bytes
// exactly as they arrived: params and results stay json.RawMessage and are
// never decoded into typed structs and re-encoded, which would lose unknown
// fields, key order and number precision.
//
// It imports nothing from the rest of agenthelm.
//
//	msg, rpcErr := jsonrpc.Parse(line)
//	if rpcErr != nil {
//		out.Write(jsonrpc.ErrorResponse(nil, rpcErr))
//	}
//	if msg.Kind == jsonrpc.KindRequest && msg.Method == "tools/call" { ... }
package jsonrpc
