# A policy that holds every call for approval, for TestWrapHeldCallClientGone.
package agenthelm.authz

decision := {
	"allow": false,
	"require_approval": true,
	"reasons": ["conformance: every call waits for approval"],
	"approvers": [],
	"approval_timeout": "",
	"labels": {},
}
