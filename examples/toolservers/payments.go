package toolservers

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
)

// Charge statuses.
const (
	ChargeCaptured = "captured"
	ChargeRefunded = "refunded"
)

// Charge is one payment taken from a customer.
type Charge struct {
	ID       string  `json:"charge_id"`
	Customer string  `json:"customer"`
	Amount   float64 `json:"amount"`   // in the currency's major unit: 1840.5 is EUR 1,840.50
	Currency string  `json:"currency"` // ISO 4217, upper case
	Status   string  `json:"status"`   // ChargeCaptured or ChargeRefunded
	RefundID string  `json:"refund_id,omitempty"`
}

// Payments is the payments server: charge_customer, refund_customer (its
// compensation) and list_charges.
type Payments struct {
	mu      sync.Mutex
	charges []Charge
	refunds int
	ledger  ledger
	srv     *server.MCPServer
}

// NewPayments returns a payments server with no charges.
func NewPayments() *Payments {
	p := &Payments{}
	s := server.NewMCPServer("example-payments", version,
		server.WithToolCapabilities(false),
		server.WithInstructions("Charges and refunds customers. Undo a charge with refund_customer."),
		server.WithRecovery(),
	)
	s.AddTool(mcp.NewTool("charge_customer",
		mcp.WithDescription("Charge a customer. Returns the charge id."),
		mcp.WithString("customer", mcp.Required(), mcp.Description("the customer's id or name")),
		mcp.WithNumber("amount", mcp.Required(), mcp.Min(0.01), mcp.Description("amount in the currency's major unit, at most 2 decimals")),
		mcp.WithString("currency", mcp.Required(), mcp.Pattern("^[A-Za-z]{3}$"), mcp.Description("ISO 4217 code, e.g. EUR")),
		mcp.WithOutputSchema[Charge](),
		annotations("Charge a customer", false, false, false, false),
	), mutating(&p.mu, &p.ledger, "charge_customer", p.charge))
	s.AddTool(mcp.NewTool("refund_customer",
		mcp.WithDescription("Refund a charge in full. Refunding a refunded charge changes nothing and succeeds."),
		mcp.WithString("charge_id", mcp.Required(), mcp.Description("the id charge_customer returned")),
		mcp.WithOutputSchema[Charge](),
		annotations("Refund a charge", false, true, true, false),
	), mutating(&p.mu, &p.ledger, "refund_customer", p.refund))
	s.AddTool(mcp.NewTool("list_charges",
		mcp.WithDescription("List every charge, refunded ones included."),
		mcp.WithOutputSchema[chargeList](),
		annotations("List charges", true, false, true, false),
	), p.list)
	p.srv = s
	return p
}

// Name returns "payments".
func (p *Payments) Name() string { return "payments" }

// MCPServer returns the MCP server exposing the payment tools.
func (p *Payments) MCPServer() *server.MCPServer { return p.srv }

// Charges returns every charge taken so far, in order, refunded ones
// included.
func (p *Payments) Charges() []Charge {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.charges)
}

type chargeList struct {
	Charges []Charge `json:"charges"`
}

// charge runs with p.mu held.
func (p *Payments) charge(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	var args struct {
		Customer string  `json:"customer"`
		Amount   float64 `json:"amount"`
		Currency string  `json:"currency"`
	}
	if err := req.BindArguments(&args); err != nil {
		return mcp.NewToolResultErrorf("invalid arguments: %v", err), nil
	}
	cents := args.Amount * 100
	switch {
	case strings.TrimSpace(args.Customer) == "":
		return mcp.NewToolResultError("invalid arguments: customer is required"), nil
	case args.Amount <= 0 || math.IsInf(args.Amount, 0) || math.IsNaN(args.Amount):
		return mcp.NewToolResultErrorf("invalid arguments: amount must be positive, got %v", args.Amount), nil
	case math.Abs(cents-math.Round(cents)) > 1e-6:
		return mcp.NewToolResultErrorf("invalid arguments: amount %v has more than 2 decimals", args.Amount), nil
	case len(args.Currency) != 3:
		return mcp.NewToolResultErrorf("invalid arguments: currency must be an ISO 4217 code such as EUR, got %q", args.Currency), nil
	}
	c := Charge{
		ID:       fmt.Sprintf("ch_%04d", len(p.charges)+1),
		Customer: args.Customer,
		Amount:   args.Amount,
		Currency: strings.ToUpper(args.Currency),
		Status:   ChargeCaptured,
	}
	p.charges = append(p.charges, c)
	return structured(c), nil
}

// refund runs with p.mu held.
func (p *Payments) refund(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	id, err := req.RequireString("charge_id")
	if err != nil {
		return mcp.NewToolResultErrorf("invalid arguments: %v", err), nil
	}
	for i := range p.charges {
		c := &p.charges[i]
		if c.ID != id {
			continue
		}
		if c.Status != ChargeRefunded {
			p.refunds++
			c.Status, c.RefundID = ChargeRefunded, fmt.Sprintf("re_%04d", p.refunds)
		}
		return structured(*c), nil
	}
	return mcp.NewToolResultErrorf("no charge %q", id), nil
}

func (p *Payments) list(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	all := p.Charges()
	if all == nil {
		all = []Charge{}
	}
	return structured(chargeList{Charges: all}), nil
}
