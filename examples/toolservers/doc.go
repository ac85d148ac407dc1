// Package toolservers holds the example MCP tool servers that agenthelm's
// demo, examples and tests run against: hotel (book_hotel,
// cancel_hotel_booking, list_bookings), payments (charge_customer,
// refund_customer, list_charges) and email (send_email, which fails for
// addresses at bounce.example or when Options.FailSend is set).
//
// Each keeps its state in memory, exposes it to Go (Hotel.Bookings,
// Payments.Charges, Email.Sent) so tests can check what a saga left behind,
// honours _meta["io.agenthelm/idempotency-key"] on every mutating tool, and
// annotates its tools truthfully. It imports nothing from agenthelm: these
// are stand-ins for third-party servers.
//
//	r, err := toolservers.Start(ctx, "hotel", toolservers.Options{})
//	defer r.Close(ctx)
//	... point an MCP client or agenthelm upstream at r.URL() ...
//	bookings := r.Server.(*toolservers.Hotel).Bookings()
package toolservers
