package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"

	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	notificationv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/notification/v1"
	orderv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/order/v1"
	"github.com/sagasuite/sagasuite/tools/internal/suite"
	"github.com/sagasuite/sagasuite/tools/internal/timeline"
)

// maxNotificationPages bounds the notification pages read for one saga
// (newest first, 100 a page): a customer with thousands of later
// notifications costs at most this many calls.
const maxNotificationPages = 20

func runSaga(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sagactl saga", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addrs := addrFlags(fs)
	asJSON := fs.Bool("json", false, "print the timeline as JSON")
	wait := fs.Duration("wait", 0, "wait at most this `long` for the saga to end and the saga log to hold every step of the order's history")
	timeout := fs.Duration("timeout", 30*time.Second, "bound on one reading's RPCs")
	tokens := addTokenFlags(fs, "sagactl-saga", false)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: sagactl saga <order-id> [--json] [--wait 30s] [--order ADDR ...]")
		fmt.Fprintln(stderr, "\nThe timeline of one saga from the services' APIs: every event of the notification service's saga log")
		fmt.Fprintln(stderr, "with the service that produced it, the order's status and step details, and the notifications sent;")
		fmt.Fprintln(stderr, "time since the order was created, gap since the previous event, compensations and failures marked.")
		fmt.Fprintln(stderr, "No trace id: the traceparent travels only as a Kafka header, which no API returns.")
		fmt.Fprintln(stderr)
		fs.PrintDefaults()
	}
	// The order id may come before or after the flags.
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitError
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(stderr, "sagactl saga: give the order id")
		fs.Usage()
		return exitError
	}
	orderID := fs.Arg(0)
	if code, ok := parseFlags(fs, fs.Args()[1:], stderr); !ok {
		return code
	}
	if _, err := uuid.Parse(orderID); err != nil {
		fmt.Fprintf(stderr, "sagactl saga: order id %q is not a UUID\n", orderID)
		return exitError
	}

	token, err := tokens.source(stderr)
	if err != nil {
		fmt.Fprintf(stderr, "sagactl saga: %v\n", err)
		return exitError
	}
	conns, err := suite.Dial(*addrs, dialOptions(token)...)
	if err != nil {
		fmt.Fprintf(stderr, "sagactl saga: %v\n", err)
		return exitError
	}
	defer conns.Close()

	tl, err := readTimeline(ctx, conns.Clients, orderID, *timeout, *wait, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "sagactl saga: %v\n", err)
		return exitError
	}
	if *asJSON {
		err = tl.WriteJSON(stdout)
	} else {
		err = tl.WriteTable(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "sagactl saga: %v\n", err)
		return exitError
	}
	return exitOK
}

// readTimeline reads the saga once, or with wait > 0 again every half
// second until the order is terminal and the saga log has caught up with
// its history (or wait passes: then the last reading is shown).
func readTimeline(ctx context.Context, c suite.Clients, orderID string, timeout, wait time.Duration, stderr io.Writer) (*timeline.Timeline, error) {
	var deadline time.Time
	if wait > 0 {
		deadline = time.Now().Add(wait)
	}
	for {
		tl, settled, err := readOnce(ctx, c, orderID, timeout, deadline.IsZero(), stderr)
		if err != nil || settled || deadline.IsZero() || time.Now().After(deadline) {
			if err == nil && !settled && !deadline.IsZero() {
				fmt.Fprintf(stderr, "sagactl saga: after %s the saga is still %s or its log incomplete; showing what there is\n", wait, tl.Status)
			}
			return tl, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// readOnce fetches the order, its saga log and its notifications. settled
// says the order is terminal and the log holds every step of its history.
func readOnce(ctx context.Context, c suite.Clients, orderID string, timeout time.Duration, warn bool, stderr io.Writer) (*timeline.Timeline, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	got, err := c.Order.GetOrder(ctx, &orderv1.GetOrderRequest{OrderId: orderID})
	if grpcstatus.Code(err) == codes.NotFound {
		return nil, false, fmt.Errorf("order %s not found", orderID)
	}
	if err != nil {
		return nil, false, fmt.Errorf("get order %s: %w", orderID, err)
	}
	o := got.GetOrder()
	var log []*eventsv1.Envelope
	resp, err := c.Notification.GetSagaLog(ctx, &notificationv1.GetSagaLogRequest{OrderId: orderID})
	switch {
	case grpcstatus.Code(err) == codes.NotFound:
		// The notification service has not recorded any event yet.
	case err != nil:
		return nil, false, fmt.Errorf("saga log of %s: %w", orderID, err)
	default:
		log = resp.GetEvents()
	}
	notes, err := notificationsOf(ctx, c.Notification, o.GetCustomerId(), orderID, o.GetCreateTime().AsTime())
	if err != nil && warn {
		// They only add rows; the saga's events are all there without them.
		fmt.Fprintf(stderr, "sagactl saga: notifications left out: %v\n", err)
	}
	tl, err := timeline.Build(o, log, notes)
	if err != nil {
		return nil, false, err
	}
	terminal := o.GetStatus() == orderv1.OrderStatus_ORDER_STATUS_COMPLETED || o.GetStatus() == orderv1.OrderStatus_ORDER_STATUS_CANCELLED
	return tl, terminal && tl.NotInSagaLog == 0, nil
}

// notificationsOf pages the customer's notifications (newest first) down
// to the order's creation and keeps the order's.
func notificationsOf(ctx context.Context, c notificationv1.NotificationServiceClient, customerID, orderID string, since time.Time) ([]*notificationv1.Notification, error) {
	var out []*notificationv1.Notification
	pageToken := ""
	for page := 0; page < maxNotificationPages; page++ {
		resp, err := c.ListNotifications(ctx, &notificationv1.ListNotificationsRequest{CustomerId: customerID, PageSize: 100, PageToken: pageToken})
		if err != nil {
			return out, fmt.Errorf("list notifications of customer %s: %w", customerID, err)
		}
		older := false
		for _, n := range resp.GetNotifications() {
			if n.GetOrderId() == orderID {
				out = append(out, n)
			}
			// A little slack: send times come from another service's clock.
			if n.GetSendTime().AsTime().Before(since.Add(-time.Minute)) {
				older = true
			}
		}
		if pageToken = resp.GetNextPageToken(); pageToken == "" || older {
			return out, nil
		}
	}
	return out, fmt.Errorf("more than %d pages of notifications since the order was created; showing the newest", maxNotificationPages)
}
