package toolservers

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
)

// Booking statuses.
const (
	BookingConfirmed = "confirmed"
	BookingCancelled = "cancelled"
)

// Booking is one hotel reservation.
type Booking struct {
	ID     string `json:"booking_id"`
	Guest  string `json:"guest"`
	Hotel  string `json:"hotel"`
	Nights int    `json:"nights"`
	Status string `json:"status"` // BookingConfirmed or BookingCancelled
}

// Hotel is the hotel booking server: book_hotel, cancel_hotel_booking
// (its compensation) and list_bookings.
type Hotel struct {
	mu       sync.Mutex
	bookings []Booking
	ledger   ledger
	srv      *server.MCPServer
}

// NewHotel returns a hotel server with no bookings.
func NewHotel() *Hotel {
	h := &Hotel{}
	s := server.NewMCPServer("example-hotel", version,
		server.WithToolCapabilities(false),
		server.WithInstructions("Books and cancels hotel rooms. Cancel a booking with cancel_hotel_booking."),
		server.WithRecovery(),
	)
	s.AddTool(mcp.NewTool("book_hotel",
		mcp.WithDescription("Book a hotel room for a guest. Returns the booking id."),
		mcp.WithString("guest", mcp.Required(), mcp.Description("the guest's full name")),
		mcp.WithString("hotel", mcp.Required(), mcp.Description("the hotel's name")),
		mcp.WithInteger("nights", mcp.Required(), mcp.Min(1), mcp.Max(30), mcp.Description("number of nights, 1 to 30")),
		mcp.WithOutputSchema[Booking](),
		annotations("Book a hotel room", false, false, false, false),
	), mutating(&h.mu, &h.ledger, "book_hotel", h.book))
	s.AddTool(mcp.NewTool("cancel_hotel_booking",
		mcp.WithDescription("Cancel a booking. Cancelling a cancelled booking changes nothing and succeeds."),
		mcp.WithString("booking_id", mcp.Required(), mcp.Description("the id book_hotel returned")),
		mcp.WithOutputSchema[Booking](),
		annotations("Cancel a hotel booking", false, true, true, false),
	), mutating(&h.mu, &h.ledger, "cancel_hotel_booking", h.cancel))
	s.AddTool(mcp.NewTool("list_bookings",
		mcp.WithDescription("List every booking, cancelled ones included."),
		mcp.WithOutputSchema[bookingList](),
		annotations("List bookings", true, false, true, false),
	), h.list)
	h.srv = s
	return h
}

// Name returns "hotel".
func (h *Hotel) Name() string { return "hotel" }

// MCPServer returns the MCP server exposing the hotel's tools.
func (h *Hotel) MCPServer() *server.MCPServer { return h.srv }

// Bookings returns every booking made so far, in order, cancelled ones
// included.
func (h *Hotel) Bookings() []Booking {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.bookings)
}

type bookingList struct {
	Bookings []Booking `json:"bookings"`
}

// book runs with h.mu held.
func (h *Hotel) book(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	var args struct {
		Guest  string `json:"guest"`
		Hotel  string `json:"hotel"`
		Nights int    `json:"nights"`
	}
	if err := req.BindArguments(&args); err != nil {
		return mcp.NewToolResultErrorf("invalid arguments: %v", err), nil
	}
	switch {
	case strings.TrimSpace(args.Guest) == "":
		return mcp.NewToolResultError("invalid arguments: guest is required"), nil
	case strings.TrimSpace(args.Hotel) == "":
		return mcp.NewToolResultError("invalid arguments: hotel is required"), nil
	case args.Nights < 1 || args.Nights > 30:
		return mcp.NewToolResultErrorf("invalid arguments: nights must be 1 to 30, got %d", args.Nights), nil
	}
	b := Booking{
		ID:     fmt.Sprintf("bk_%04d", len(h.bookings)+1),
		Guest:  args.Guest,
		Hotel:  args.Hotel,
		Nights: args.Nights,
		Status: BookingConfirmed,
	}
	h.bookings = append(h.bookings, b)
	return structured(b), nil
}

// cancel runs with h.mu held.
func (h *Hotel) cancel(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	id, err := req.RequireString("booking_id")
	if err != nil {
		return mcp.NewToolResultErrorf("invalid arguments: %v", err), nil
	}
	for i := range h.bookings {
		if h.bookings[i].ID == id {
			h.bookings[i].Status = BookingCancelled
			return structured(h.bookings[i]), nil
		}
	}
	return mcp.NewToolResultErrorf("no booking %q", id), nil
}

func (h *Hotel) list(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	all := h.Bookings()
	if all == nil {
		all = []Booking{}
	}
	return structured(bookingList{Bookings: all}), nil
}
